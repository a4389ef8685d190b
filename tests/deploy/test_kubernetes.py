"""deploy/kubernetes: every manifest validates offline against the Kubernetes schemas
(kubernetes-validate ships them), the overlays render with `kubectl kustomize` and their patches
show in the output, and the manifests agree with the image and the service: the user, port,
paths and commands of the Dockerfile, the probes of /healthz and /readyz, the settings the
service reads, the CLI's commands, secrets by reference only.

Not proven here: that a cluster admits and runs them (no API server: admission webhooks,
PodSecurity admission, the CNI's NetworkPolicy support and the storage class are the cluster's).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer.main

from cds_service.cli import app as cli_app
from cds_service.config import Settings
from tests.deploy import dockerfile, manifests
from tests.deploy.image import final_stage
from tests.deploy.manifests import Doc

# timeZone on CronJobs is GA since 1.27; the newest version the package ships is checked too.
KUBERNETES_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
SECRET_NAME = "cds-risk-secrets"
SECRET_ENV = {"CDS_DATABASE_URL", "CDS_PSEUDONYM_KEY"}
SECRETISH = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL", re.IGNORECASE)
ALLOWED_EGRESS_PORTS = {53, 5432, 443, 4317, 4318}


def _validate(doc: Doc, version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def _rendered() -> dict[str, list[Doc]]:
    if manifests.kubectl() is None:
        pytest.skip("kubectl is not installed: the overlays are not rendered here")
    return {o.name: manifests.render(o) for o in manifests.OVERLAYS}


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    return _rendered()


def _all_sets(rendered: dict[str, list[Doc]]) -> list[tuple[str, list[Doc]]]:
    return [("base", manifests.base_docs()), *rendered.items()]


# ---- schemas ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_base_manifest_validates_strictly(version: str) -> None:
    docs = manifests.base_docs()
    listed = set(manifests.kustomization(manifests.BASE)["resources"])
    on_disk = {p.name for p in manifests.BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "every base file is listed in the kustomization"
    for doc in docs:
        _validate(doc, version)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_overlay_validates_strictly(
    rendered: dict[str, list[Doc]], version: str
) -> None:
    assert set(rendered) == {"acceptance", "production"}
    for docs in rendered.values():
        assert len(docs) == len(manifests.base_docs())
        for doc in docs:
            _validate(doc, version)


def test_the_validation_refuses_a_misspelt_field_and_a_wrong_type() -> None:
    deployment = manifests.find(manifests.base_docs(), "Deployment")
    (container,) = manifests.pod_spec(deployment)["containers"]  # type: ignore[index]
    misspelt = copy.deepcopy(deployment)
    (c,) = manifests.pod_spec(misspelt)["containers"]  # type: ignore[index]
    c["readinesProbe"] = c.pop("readinessProbe")
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["revisionHistoryLimit"] = "five"
    for bad in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            _validate(bad, KUBERNETES_VERSIONS[0])
    assert container["readinessProbe"]


# ---- overlays -----------------------------------------------------------------------------------


def _at(doc: Any, pointer: str) -> Any:
    for part in pointer.strip("/").split("/"):
        doc = doc[int(part)] if isinstance(doc, list) else doc[part.replace("~1", "/")]
    return doc


def _leaves(patch: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Pointer and value of each leaf of a strategic-merge patch (lists compared whole)."""
    if isinstance(patch, dict):
        return [(p, v) for k, sub in patch.items() for p, v in _leaves(sub, f"{prefix}/{k}")]
    return [(prefix, patch)]


def test_every_overlay_patch_shows_in_the_rendered_output(rendered: dict[str, list[Doc]]) -> None:
    for overlay in manifests.OVERLAYS:
        docs = rendered[overlay.name]
        kust = manifests.kustomization(overlay)
        for entry in kust["patches"]:
            (patch,) = manifests.load(overlay / entry["path"])
            if isinstance(patch, list):  # JSON 6902: each operation's value is at its path
                target = manifests.find(docs, entry["target"]["kind"], entry["target"]["name"])
                for op in patch:
                    assert op["op"] in ("replace", "add")
                    assert _at(target, op["path"]) == op["value"], (overlay.name, op["path"])
            else:  # strategic merge: every leaf it sets is in the output
                target = manifests.find(docs, patch["kind"], patch["metadata"]["name"])
                for pointer, value in _leaves({k: v for k, v in patch.items() if k != "metadata"}):
                    assert _at(target, pointer) == value, (overlay.name, pointer)
        for doc in docs:
            assert doc["kind"] != "Namespace"
            assert doc["metadata"]["namespace"] == kust["namespace"]
        (image,) = kust["images"]
        for _, container in manifests.containers(docs):
            assert container["image"] == f"{image['newName']}:{image['newTag']}"
        env = manifests.find(docs, "ConfigMap")["data"]["CDS_ENVIRONMENT"]
        assert env == overlay.name


def test_the_migration_job_can_be_applied_on_its_own_before_the_rollout(
    rendered: dict[str, list[Doc]],
) -> None:
    """`kubectl apply -k OVERLAY -l 'app.kubernetes.io/component in (config,migration)'` applies
    the Job with the ConfigMap and ServiceAccount it needs and nothing that serves."""
    for docs in rendered.values():
        picked = [
            d
            for d in docs
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component")
            in ("config", "migration")
        ]
        kinds = {d["kind"]: d["metadata"]["name"] for d in picked}
        assert "Deployment" not in kinds and "Job" in kinds
        job = manifests.find(picked, "Job")
        spec = manifests.pod_spec(job)
        assert spec is not None
        assert kinds["ServiceAccount"] == spec["serviceAccountName"]
        (container,) = spec["containers"]
        assert container["envFrom"][0]["configMapRef"]["name"] == kinds["ConfigMap"]
        assert job["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PreSync"


# ---- agreement with the image and the service ---------------------------------------------------


def _image_user() -> tuple[int, int]:
    user = final_stage().last("USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    return int(uid), int(gid)


def test_pods_run_as_the_image_user_with_a_read_only_root_and_no_capabilities(
    rendered: dict[str, list[Doc]],
) -> None:
    uid, gid = _image_user()
    for name, docs in _all_sets(rendered):
        for doc, spec in manifests.workloads(docs):
            where = f"{name}/{doc['metadata']['name']}"
            ctx = spec["securityContext"]
            assert ctx["runAsNonRoot"] is True, where
            assert (ctx["runAsUser"], ctx["runAsGroup"]) == (uid, gid), where
            assert ctx["seccompProfile"]["type"] == "RuntimeDefault", where
            assert spec["automountServiceAccountToken"] is False, where
            empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
            for container in spec["containers"]:
                sc = container["securityContext"]
                assert sc["readOnlyRootFilesystem"] is True, where
                assert sc["allowPrivilegeEscalation"] is False, where
                assert sc["capabilities"] == {"drop": ["ALL"]}, where
                for part in ("requests", "limits"):
                    assert set(container["resources"][part]) == {"cpu", "memory"}, where
                mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                assert mounts["/tmp"] in empty_dirs, where


def test_secrets_are_referenced_never_written(rendered: dict[str, list[Doc]]) -> None:
    for name, docs in _all_sets(rendered):
        assert all(d["kind"] != "Secret" for d in docs), name
        config = manifests.find(docs, "ConfigMap")
        assert not [k for k in config["data"] if SECRETISH.search(k)], name
        mount_dir = str(Path(config["data"]["CDS_TRUSTED_ISSUERS"]).parent)
        for doc, container in manifests.containers(docs):
            where = f"{name}/{doc['metadata']['name']}"
            env = {e["name"]: e for e in container.get("env", [])}
            for var in env.values():
                assert "value" not in var or not SECRETISH.search(var["name"]), where
            for var in SECRET_ENV:
                assert env[var]["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME, where
            assert container["envFrom"] == [
                {"configMapRef": {"name": config["metadata"]["name"]}}
            ], where
            spec = manifests.pod_spec(doc)
            assert spec is not None
            volumes = {v["name"]: v for v in spec["volumes"]}
            (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == mount_dir]
            assert mount["readOnly"] is True and "secret" in volumes[mount["name"]], where


def test_the_configmap_names_only_settings_the_service_reads() -> None:
    known = {f"CDS_{field.upper()}" for field in Settings.model_fields} | {"CDS_LOG_LEVEL"}
    config = manifests.find(manifests.base_docs(), "ConfigMap")["data"]
    assert set(config) <= known, set(config) - known
    # one monitoring scheduler: the CronJob, not every replica
    assert config["CDS_MONITOR_INTERVAL_SECONDS"] == "0"
    assert config["CDS_MIGRATE_ON_START"] == "false"
    for key in final_stage().env():
        assert not key.startswith("CDS_") or key in known | {
            "CDS_MODELS_DIR",
            "CDS_HOOKS_DIR",
            "CDS_DATA_DIR",
        }, key


def test_the_server_pod_matches_the_image_and_drains_before_it_stops() -> None:
    docs = manifests.base_docs()
    stage = final_stage()
    deployment = manifests.find(docs, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    cmd_ins = stage.last("CMD")
    assert cmd_ins is not None
    cmd = dockerfile.exec_form(cmd_ins.args)
    assert container["args"] == cmd, "the pod runs the image's own command"
    assert "--workers" not in cmd, "one process per container"
    port = int(cmd[cmd.index("--port") + 1])
    expose = stage.last("EXPOSE")
    assert expose is not None and int(expose.args) == port
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert "replicas" not in spec, "the HorizontalPodAutoscaler owns the replica count"
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    last_replay = 5  # seconds the lifespan's shut-down gives the spool (lifespan._last_replay)
    assert int(sleep[1]) + last_replay + 10 <= pod["terminationGracePeriodSeconds"]
    spool = stage.env()["CDS_SPOOL_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[spool]]


def test_service_budget_and_autoscaler_select_exactly_the_server_pods(
    rendered: dict[str, list[Doc]],
) -> None:
    for name, docs in _all_sets(rendered):
        deployment = manifests.find(docs, "Deployment")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        for kind in ("Service", "PodDisruptionBudget"):
            doc = manifests.find(docs, kind)
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert selector.items() <= labels.items(), (name, kind)
            for other, _ in manifests.workloads(docs):
                if other is not deployment:
                    pod_labels = other_labels(other)
                    assert not selector.items() <= pod_labels.items(), (name, kind, other["kind"])
        hpa = manifests.find(docs, "HorizontalPodAutoscaler")
        assert hpa["apiVersion"] == "autoscaling/v2"
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) == ("Deployment", deployment["metadata"]["name"])
        pdb = manifests.find(docs, "PodDisruptionBudget")
        assert pdb["spec"]["maxUnavailable"] < hpa["spec"]["minReplicas"], name


def other_labels(doc: Doc) -> dict[str, str]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]  # type: ignore[no-any-return]
    return doc["spec"]["template"]["metadata"]["labels"]  # type: ignore[no-any-return]


def test_network_policy_denies_all_but_the_listed_egress(rendered: dict[str, list[Doc]]) -> None:
    for name, docs in _all_sets(rendered):
        policy = manifests.find(docs, "NetworkPolicy")
        spec = policy["spec"]
        assert set(spec["policyTypes"]) == {"Ingress", "Egress"}
        selector = spec["podSelector"]["matchLabels"]
        for doc, _ in manifests.workloads(docs):
            assert selector.items() <= other_labels(doc).items(), (name, doc["kind"])
        ports = set()
        for rule in spec["egress"]:
            assert rule.get("to") and rule.get("ports"), f"{name}: an egress rule allows all"
            ports |= {p["port"] for p in rule["ports"]}
            for peer in rule["to"]:
                assert peer.get("ipBlock", {}).get("cidr") != "0.0.0.0/0", name
        assert ports == ALLOWED_EGRESS_PORTS, name
        for rule in spec["ingress"]:
            assert rule.get("from"), f"{name}: an ingress rule admits everyone"


def test_job_and_cronjob_commands_are_real_cli_commands() -> None:
    """Each container's args parse with the service's own CLI (options included); the image test
    runs them for real."""
    docs = manifests.base_docs()
    seen = set()
    for _doc, container in manifests.containers(docs):
        rest = list(container["args"])
        command: Any = typer.main.get_command(cli_app)
        while hasattr(command, "commands"):
            command = command.commands[rest.pop(0)]
        command.make_context(command.name, rest)  # raises on an unknown command or option
        seen.add(" ".join(container["args"][:2]))
    assert {"db upgrade", "monitor --days", "outcomes --export", "serve --host"} <= seen
