"""The image's entry point run as a plain process (tests/deploy/image.py says what is the image's
own and what is not): the quick start with no configuration at all, and the Kubernetes commands
(migration Job, server, monitor and outcomes CronJobs) in production on PostgreSQL with the
ConfigMap's settings, secrets from the environment and the trusted-callers file as a mounted
file. Nothing outside the image's writable paths may change.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from tests.deploy import manifests
from tests.deploy.image import ImageRoot
from tests.utils.server import free_port
from tests.utils.service import new_database

ISS = "https://ehr.example.org"
SERVICE = "ed-admission-risk"
PSEUDONYM_KEY = "a-test-only-pseudonym-key-0123456789"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> ImageRoot:
    built = ImageRoot(tmp_path_factory.mktemp("image"))
    built.build()
    return built


def _with_port(argv: list[str], port: int) -> list[str]:
    """The CMD's --port value swapped for a free loopback port (several tests share a host)."""
    out = list(argv)
    out[out.index("--port") + 1] = str(port)
    return out


def _healthcheck(image: ImageRoot, port: int, env: dict[str, str]) -> int:
    argv = [a.replace("127.0.0.1:8000/", f"127.0.0.1:{port}/") for a in image.healthcheck()]
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


def _wait_up(url: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"server exited with {server.returncode}"
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("server did not answer /healthz")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def serving() -> Iterator[list[Running]]:
    """Servers a test starts; whatever is still running at the end is killed."""
    started: list[Running] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def _start(
    image: ImageRoot, args: list[str], env: dict[str, str], started: list[Running]
) -> Running:
    log = image.tmp / f"server-{len(started)}-{time.monotonic_ns()}.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            image.command(args), cwd=image.workdir, env=env, stdout=err, stderr=err
        )
    started.append(Running(process, log))
    return started[-1]


def _stopped_gracefully(server: Running, grace: float) -> bool:
    """SIGTERM as the kubelet sends it: uvicorn stops accepting, finishes in-flight calls, runs
    the lifespan's shut-down (last spool replay), then re-raises SIGTERM, so the exit status is
    -SIGTERM (143 in a container) after a complete shut-down."""
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=grace)
    return (
        code in (0, -signal.SIGTERM) and "Application shutdown complete." in server.log.read_text()
    )


def test_the_code_runs_from_the_image_layout_not_the_checkout(image: ImageRoot) -> None:
    env = image.env()
    done = subprocess.run(
        [image.command([])[0], "-c", "import cds_service, fhir_mappers, sys; "
         "print(cds_service.__file__); print(fhir_mappers.__file__)"],
        cwd=image.workdir, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for line in done.stdout.split():
        assert Path(line).is_relative_to(image.root), line


def test_the_quick_start_serves_with_no_configuration(
    image: ImageRoot, serving: list[Running]
) -> None:
    """`docker run -p 8000:8000 image`: development, SQLite in the data directory."""
    before = image.snapshot()
    port = free_port()
    env = image.env()
    server = _start(image, _with_port(image.cmd(), port), env, serving)
    url = f"http://127.0.0.1:{port}"
    _wait_up(url, server.process)
    health = httpx.get(f"{url}/healthz").json()
    assert health["environment"] == "development"
    assert SERVICE in health["services"]
    assert httpx.get(f"{url}/readyz").json() == {"status": "ready"}
    assert _healthcheck(image, port, env) == 0
    assert _stopped_gracefully(server, 30)
    assert image.snapshot() == before, "the image wrote outside its writable paths"
    assert (Path(env["CDS_DATA_DIR"]) / "cds.sqlite3").is_file()
    assert _healthcheck(image, port, env) != 0, "the healthcheck must fail with no server"


@pytest.mark.postgres
def test_the_kubernetes_commands_run_in_production_on_postgresql(
    image: ImageRoot, serving: list[Running], tmp_path: Path
) -> None:
    docs = manifests.base_docs()
    config = manifests.find(docs, "ConfigMap")["data"]

    def args_of(kind: str, name: str | None = None) -> list[str]:
        spec = manifests.pod_spec(manifests.find(docs, kind, name))
        assert spec is not None
        (container,) = spec["containers"]
        return list(container["args"])

    db = new_database("postgres", tmp_path)
    try:
        key = generate_key("ES384")
        # the Secret `cds-risk-trusted-callers`, mounted where the ConfigMap says
        callers = image.path(config["CDS_TRUSTED_ISSUERS"])
        callers.parent.mkdir(parents=True, exist_ok=True)
        callers.write_text(json.dumps([{"iss": ISS, "jwks": public_jwks(key)}]))
        env = image.env(
            **{k: str(image.path(v)) if v.startswith("/") else v for k, v in config.items()},
            CDS_DATABASE_URL=db.url,
            CDS_PSEUDONYM_KEY=PSEUDONYM_KEY,
        )
        outcomes = args_of("CronJob", "cds-risk-outcomes")
        # the claim `cds-risk-exports`, mounted where the CronJob says: one unrelated patient
        export = image.path(outcomes[outcomes.index("--export") + 1])
        export.mkdir(parents=True)
        patient = {"resourceType": "Patient", "id": "syn-other-1", "gender": "female"}
        (export / "Patient.ndjson").write_text(json.dumps(patient) + "\n")
        before = image.snapshot()

        assert "database at head" in image.run(args_of("Job"), env)

        port = free_port()
        deployment = manifests.find(docs, "Deployment")
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        server = _start(image, _with_port(args_of("Deployment"), port), env, serving)
        url = f"http://127.0.0.1:{port}"
        _wait_up(url, server.process)
        assert httpx.get(f"{url}/healthz").json()["environment"] == "production"
        assert httpx.get(f"{url}/readyz").json() == {"status": "ready"}
        assert _healthcheck(image, port, env) == 0

        now = datetime.now(UTC)
        case = ed_case(now, pid="syn-image-1")
        body = hook_body("encounter-start", "syn-image-1", ed_prefetch(case),
                         encounter_id=case["encounter_id"])  # fmt: skip
        token = sign(key, iss=ISS, aud=f"{config['CDS_PUBLIC_BASE_URL']}/cds-services/{SERVICE}")
        r = httpx.post(f"{url}/cds-services/{SERVICE}", json=body,
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
        assert r.status_code == 200, r.text
        card = r.json()["cards"][0]["uuid"]
        sql = "SELECT card_uuid FROM card_audit WHERE card_uuid = :u"
        deadline = time.monotonic() + 30  # a row spooled past the budget is replayed
        while not db.rows(sql, u=card) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(db.rows(sql, u=card)) == 1
        print(f"\nserver RSS after one call: {_rss_mib(server.process.pid):.0f} MiB")
        assert _stopped_gracefully(server, grace)

        image.run(args_of("CronJob", "cds-risk-monitor"), env)
        assert db.rows("SELECT count(*) AS n FROM monitoring_runs")[0]["n"] >= 1
        mounted = [str(export) if a == outcomes[outcomes.index("--export") + 1] else a
                   for a in outcomes]  # fmt: skip
        assert "cards considered 0" in image.run(mounted, env)  # no outcome for an unseen patient
        assert image.snapshot() == before, "the image wrote outside its writable paths"
    finally:
        db.close()
