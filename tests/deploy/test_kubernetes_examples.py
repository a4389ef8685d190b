"""deploy/kubernetes/examples: manifests outside the base kustomization, applied when needed.
Each validates offline against the Kubernetes schemas, runs as the base pods do, and its
container's args parse with the service's own CLI; the indexed table Job asks for as many
completions as its --shard has shards, with K from the pod's completion index."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import typer.main

from cds_service.cli import app as cli_app
from tests.deploy import manifests

EXAMPLES = sorted((manifests.KUBERNETES / "examples").glob("*.yaml"))
KUBERNETES_VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_strictly(path, version) -> None:
    for doc in manifests.load(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_indexed_table_job_runs_a_real_command_on_its_own_shard() -> None:
    (job,) = manifests.load(manifests.KUBERNETES / "examples" / "table-indexed-job.yaml")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    (container,) = spec["template"]["spec"]["containers"]
    args = list(container["args"])
    shard = args[args.index("--shard") + 1]
    assert shard == f"$(SHARD)/{spec['completions']}"
    assert "$(SHARD)" in args[args.index("--out") + 1]  # one part file per pod
    (env,) = [e for e in container["env"] if e["name"] == "SHARD"]
    path = env["valueFrom"]["fieldRef"]["fieldPath"]
    assert path == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    command: Any = typer.main.get_command(cli_app)
    command = command.commands[args[0]]
    command.make_context(command.name, args[1:])  # raises on an unknown command or option
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
