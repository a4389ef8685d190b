"""The first run: ``serve`` in development without trusted callers sets up a local development
caller and prints the way once; acceptance and production refuse to start without trusted callers;
the public URL follows --host/--port and the commands that talk to the service agree on it;
``demo-call`` exits non-zero when every call failed and says in one line when nothing answers.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from joserfc import jwt
from typer.testing import CliRunner

from cds_service.cli import ExitCode, app
from cds_service.cli.first_run import prepare, record_served_url, served_url_path
from cds_service.config import Settings
from cds_service.main import create_app
from cds_service.observability.logs import configure_logging
from cds_service.security.local_issuer import LOCAL_ISSUER, load_private_key, local_key_path
from tests.utils.server import ServerThread, free_port


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    # serve's preparation writes these into the environment (for its workers): set then delete,
    # so that the monkeypatch removes what a test's `prepare` wrote.
    for name in ("CDS_PUBLIC_BASE_URL", "CDS_TRUSTED_ISSUERS", "CDS_DASHBOARD_DEV_USER"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    values = {
        "CDS_DATA_DIR": str(tmp_path / "data"),
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_a_first_start_in_development_sets_up_a_local_caller_and_prints_the_way(
    capsys: pytest.CaptureFixture[str],
) -> None:
    prepare("127.0.0.1", 18123)
    out = capsys.readouterr().out
    settings = Settings()
    assert settings.public_base_url == "http://127.0.0.1:18123"
    callers = json.loads(settings.trusted_issuers_path.read_text())
    assert [c["iss"] for c in callers] == [LOCAL_ISSUER]
    key = load_private_key(local_key_path())
    assert callers[0]["jwks"]["keys"][0]["kid"] == key.kid
    assert "local development caller" in out
    for expected in (
        "http://127.0.0.1:18123/cds-services",
        "cds-service demo-call",
        "http://127.0.0.1:18123/tryit",
        "http://127.0.0.1:18123/dashboard",
    ):
        assert out.count(expected) == 1, expected
    assert served_url_path().read_text().strip() == "http://127.0.0.1:18123"


def test_a_later_start_keeps_the_callers_and_only_prints_the_urls(
    capsys: pytest.CaptureFixture[str],
) -> None:
    prepare("127.0.0.1", 18124)
    first = local_key_path().read_bytes()
    capsys.readouterr()
    prepare("127.0.0.1", 18124)
    out = capsys.readouterr().out
    assert local_key_path().read_bytes() == first
    assert "local development caller" not in out
    assert "cds-service demo-call" in out


def test_the_public_url_setting_wins_over_the_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "https://cds.hospital.example/")
    prepare("0.0.0.0", 9000)
    assert Settings().public_base_url == "https://cds.hospital.example"
    assert not served_url_path().exists()


def test_all_interfaces_is_reached_on_loopback() -> None:
    prepare("0.0.0.0", 9001)
    assert Settings().public_base_url == "http://127.0.0.1:9001"


def test_the_environment_is_restored_between_tests() -> None:
    import os

    assert "CDS_PUBLIC_BASE_URL" not in os.environ


@pytest.mark.parametrize("environment", ["acceptance", "production"])
def test_acceptance_and_production_refuse_to_start_without_trusted_callers(
    environment: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_ENVIRONMENT", environment)
    monkeypatch.setenv("CDS_PSEUDONYM_KEY", "a-secret-of-more-than-16-characters")
    result = CliRunner().invoke(app, ["serve", "--port", str(free_port())])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "CDS_TRUSTED_ISSUERS must name an existing trusted-callers file" in result.stderr
    assert not local_key_path().exists()


def test_token_signs_for_where_serve_said_it_serves() -> None:
    assert CliRunner().invoke(app, ["keys", "init"]).exit_code == 0
    record_served_url("http://127.0.0.1:18999")
    result = CliRunner().invoke(app, ["token", "/cds-services/ed-admission-risk"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    claims = jwt.decode(token, load_private_key(local_key_path()), algorithms=["ES384"]).claims
    assert claims["aud"] == "http://127.0.0.1:18999/cds-services/ed-admission-risk"


def test_demo_call_exits_8_when_every_call_failed(tmp_path: Path) -> None:
    """Discovery answers, every call is refused (a body limit smaller than any example)."""
    assert CliRunner().invoke(app, ["keys", "init"]).exit_code == 0
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'server.sqlite3'}",
        spool_dir=tmp_path / "spool",
        auth_disabled=True,
        max_body_bytes=100,
    )
    with ServerThread(create_app(settings)) as server:
        result = CliRunner().invoke(app, ["demo-call", "--url", server.url])
    assert result.exit_code == ExitCode.CALLS_FAILED == 8, result.output
    assert "HTTP 413" in result.stdout
    assert result.stderr.strip().splitlines() == [f"error: all {3} call(s) failed"]


def test_demo_call_to_nothing_is_one_line_without_a_traceback() -> None:
    assert CliRunner().invoke(app, ["keys", "init"]).exit_code == 0
    record_served_url(f"http://127.0.0.1:{free_port()}")
    result = CliRunner().invoke(app, ["demo-call"])
    assert result.exit_code == ExitCode.UNREACHABLE
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach http://127.0.0.1:") and "is it serving?" in line
    assert "Traceback" not in result.output


def test_console_logs_in_development_and_json_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().effective_log_format == "console"
    monkeypatch.setenv("CDS_ENVIRONMENT", "production")
    monkeypatch.setenv("CDS_PSEUDONYM_KEY", "a-secret-of-more-than-16-characters")
    monkeypatch.setenv("CDS_AUTH_DISABLED", "false")
    monkeypatch.setenv("CDS_TRUSTED_ISSUERS", __file__)  # any existing file passes the check
    assert Settings().effective_log_format == "json"
    monkeypatch.setenv("CDS_LOG_FORMAT", "console")
    assert Settings().effective_log_format == "console"
    stream = io.StringIO()
    handler = configure_logging("INFO", stream, fmt="console")
    try:
        logging.getLogger("cds_service").info(
            "refused 401 GET /cds-services: token expired", extra={"status": 401}
        )
        logging.getLogger("cds_service").info("fetch Observation?patient=syn-ed-1\nsecond line")
    finally:
        logging.getLogger().removeHandler(handler)
    line, scrubbed = stream.getvalue().strip().splitlines()
    assert "syn-ed-1" not in scrubbed and "[redacted]" in scrubbed  # the same scrubber
    assert scrubbed.endswith("second line")  # one record, one line
    assert "INFO" in line and "refused 401 GET /cds-services: token expired" in line
    assert line.endswith("[status=401]") and not line.startswith("{")


@pytest.mark.parametrize("environment", ["acceptance", "production"])
def test_the_documented_sandbox_caller_is_refused_outside_development(environment: str) -> None:
    from cds_service.lifespan import refuse_development_callers
    from cds_service.security.trusted_callers import TrustedCallersError, load_trusted_callers

    example = Path(__file__).resolve().parents[2] / "docs" / "examples" / "trusted-callers.json"
    issuers = load_trusted_callers(example)
    refuse_development_callers(Settings(), issuers)  # development: fine
    settings = Settings(
        environment=environment, pseudonym_key="a-secret-of-more-than-16", trusted_issuers=example
    )
    with pytest.raises(TrustedCallersError, match="development only"):
        refuse_development_callers(settings, issuers)
    hospital = {k: v for k, v in issuers.items() if "sandbox" not in k}
    refuse_development_callers(settings, hospital)
