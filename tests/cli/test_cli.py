"""The ``cds-service`` command groups, driven through Typer's CliRunner in-process.

Each test points CDS_DATA_DIR (and where needed CDS_HOOKS_DIR / CDS_DATABASE_URL) at a temporary
folder, so nothing touches the checkout's data/ or the network beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from joserfc import jwk, jwt
from typer.testing import CliRunner

from cds_service.cli import ExitCode, app
from cds_service.config import Settings
from cds_service.main import create_app
from cds_service.security.local_issuer import LOCAL_ISSUER
from tests.utils.server import ServerThread

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "hooks"
COMMANDS = [
    ["train"],
    ["table"],
    ["serve"],
    ["example"],
    ["token"],
    ["demo-call"],
    ["promote"],
    ["rollback"],
    ["retire"],
    ["outcomes"],
    ["monitor"],
    ["keys"],
    ["keys", "init"],
    ["audit"],
    ["audit", "verify"],
    ["db"],
    ["db", "upgrade"],
    ["report", "pms"],
    ["report", "model-card"],
]


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Set for every test (a forgotten ``env=`` must not write into the checkout's data/)."""
    values = {
        "CDS_DATA_DIR": str(tmp_path / "data"),
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        "CDS_PUBLIC_BASE_URL": "https://cds.example.org",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def test_top_level_help_lists_the_groups_but_not_the_moved_commands(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("train", "serve", "keys", "demo-call", "promote", "audit", "monitor", "db"):
        assert name in result.output
    group = typer.main.get_command(app)
    visible = {name for name, command in group.commands.items() if not command.hidden}
    assert {"synth", "simulate"} <= set(group.commands)
    assert not visible & {"synth", "simulate"}
    assert not re.search(r"^\W*(synth|simulate)\s", result.output, re.MULTILINE)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("name", ["synth", "simulate"])
def test_moved_commands_point_to_cds_devtools_and_exit_2(runner: CliRunner, name: str) -> None:
    result = runner.invoke(app, [name, "--seed", "7", "--out", "data/holdout"])
    assert result.exit_code == ExitCode.USAGE == 2
    assert f"python -m cds_devtools {name} --seed 7 --out data/holdout" in result.stderr


def test_keys_init_then_token_signs_for_the_endpoint(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    result = runner.invoke(
        app, ["keys", "init", "--fhir-server", "https://fhir.example.org/r4"], env=env
    )
    assert result.exit_code == 0, result.output
    key_file = tmp_path / "data" / "keys" / "local-signing-key.json"
    assert key_file.is_file()
    entries = json.loads((tmp_path / "data" / "trusted-callers.json").read_text())
    assert [e["iss"] for e in entries] == [LOCAL_ISSUER]
    assert entries[0]["fhir_servers"] == ["https://fhir.example.org/r4"]

    result = runner.invoke(app, ["token", "/cds-services/ed-admission-risk"], env=env)
    assert result.exit_code == 0, result.output
    keys = jwk.KeySet.import_key_set(entries[0]["jwks"])
    token = jwt.decode(result.output.strip(), keys, algorithms=["ES384"])
    assert token.claims["iss"] == LOCAL_ISSUER
    assert token.claims["aud"] == "https://cds.example.org/cds-services/ed-admission-risk"
    assert token.claims["exp"] - token.claims["iat"] == 300


def test_keys_init_replaces_the_entry_of_the_same_issuer(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    for _ in range(2):
        assert runner.invoke(app, ["keys", "init", "--iss", "dev-ehr"], env=env).exit_code == 0
    entries = json.loads((tmp_path / "data" / "trusted-callers.json").read_text())
    assert [e["iss"] for e in entries] == ["dev-ehr"]
    result = runner.invoke(app, ["token", "cds-services"], env=env)
    assert (
        jwt.decode(
            result.output.strip(),
            jwk.KeySet.import_key_set(entries[0]["jwks"]),
            algorithms=["ES384"],
        ).claims["iss"]
        == "dev-ehr"
    )


@pytest.mark.parametrize("command", [["token", "/cds-services"], ["demo-call"]])
def test_signing_commands_without_a_key_exit_3(
    runner: CliRunner, env: dict[str, str], command: list[str]
) -> None:
    result = runner.invoke(app, command, env=env)
    assert result.exit_code == ExitCode.BAD_INPUT == 3
    assert "keys init" in result.stderr


def test_example_prints_a_request_for_the_service(runner: CliRunner, env: dict[str, str]) -> None:
    result = runner.invoke(app, ["example", "post-mi-unplanned-visit-risk"], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["hook"] == "patient-view"
    assert set(body["prefetch"]) == {"patient", "observations", "conditions"}


def test_example_of_an_unknown_service_exits_3(runner: CliRunner, env: dict[str, str]) -> None:
    result = runner.invoke(app, ["example", "no-such-service"], env=env)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "unknown service id" in result.stderr
    assert "ed-admission-risk" in result.stderr


def test_db_upgrade_migrates_a_fresh_sqlite_database(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    result = runner.invoke(app, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "database at head"
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    try:
        tables = set(sa.inspect(engine).get_table_names())
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    assert len(versions) == 1
    assert "alembic_version" in tables and len(tables) > 1


def test_audit_verify_on_an_empty_chain(runner: CliRunner, env: dict[str, str]) -> None:
    result = runner.invoke(app, ["audit", "verify"], env=env)
    assert result.exit_code == 0, result.output
    assert "deployment chain intact (0 records)" in result.output


def test_monitor_refuses_a_naive_until(runner: CliRunner, env: dict[str, str]) -> None:
    result = runner.invoke(app, ["monitor", "--until", "2026-03-01T00:00:00"], env=env)
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "UTC offset" in result.stderr


def _renamed_hooks(directory: Path) -> Path:
    """Hook definitions whose ids say nothing (or the wrong thing) about their model."""
    directory.mkdir()
    renames = {
        # post-MI model, id without "post-mi"
        "post-mi-unplanned-visit-risk.toml": "cardiac-rehab-watch",
        "ed-admission-risk.toml": "post-mi-lookalike",  # ED model, "post-mi" in id
    }
    for name, new_id in renames.items():
        text = (HOOKS / name).read_text(encoding="utf-8")
        old_id = tomllib.loads(text)["service"]["id"]
        (directory / name).write_text(
            text.replace(f'id = "{old_id}"', f'id = "{new_id}"'), encoding="utf-8"
        )
    return directory


def test_example_takes_the_model_from_the_hook_definition(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "CDS_HOOKS_DIR": str(_renamed_hooks(tmp_path / "hooks"))}
    result = runner.invoke(app, ["example", "cardiac-rehab-watch"], env=env)
    assert result.exit_code == 0, result.output
    assert "conditions" in json.loads(result.output)["prefetch"]  # the post-MI example
    result = runner.invoke(app, ["example", "post-mi-lookalike"], env=env)
    assert result.exit_code == 0, result.output
    assert "conditions" not in json.loads(result.output)["prefetch"]  # the ED example


def test_demo_call_takes_the_model_from_the_hook_definition(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    """Service ids that mislead about their model still get the right example (and cards)."""
    hooks = _renamed_hooks(tmp_path / "hooks")
    env = {**env, "CDS_HOOKS_DIR": str(hooks)}
    assert runner.invoke(app, ["keys", "init"], env=env).exit_code == 0
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'server.sqlite3'}",
        hooks_dir=hooks,
        spool_dir=tmp_path / "spool",
        environment="development",
        auth_disabled=True,
    )
    with ServerThread(create_app(settings)) as server:
        result = runner.invoke(app, ["demo-call", "--url", server.url], env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "cardiac-rehab-watch: HTTP 200" in lines
    assert "post-mi-lookalike: HTTP 200" in lines
    assert sum(line.startswith("  [") for line in lines) >= 2  # a card per service


def test_demo_call_skips_a_service_without_a_local_hook_definition(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    server_hooks = _renamed_hooks(tmp_path / "hooks")
    local_hooks = tmp_path / "local-hooks"
    local_hooks.mkdir()
    (local_hooks / "post-mi-unplanned-visit-risk.toml").write_bytes(
        (server_hooks / "post-mi-unplanned-visit-risk.toml").read_bytes()
    )
    env = {**env, "CDS_HOOKS_DIR": str(local_hooks)}
    assert runner.invoke(app, ["keys", "init"], env=env).exit_code == 0
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'server.sqlite3'}",
        hooks_dir=server_hooks,
        spool_dir=tmp_path / "spool",
        environment="development",
        auth_disabled=True,
    )
    with ServerThread(create_app(settings)) as server:
        result = runner.invoke(app, ["demo-call", "--url", server.url], env=env)
    assert result.exit_code == 0, result.output
    assert "post-mi-lookalike: skipped (no hook definition for it in CDS_HOOKS_DIR)" in (
        result.output
    )
    assert "cardiac-rehab-watch: HTTP 200" in result.output


def test_demo_call_to_a_closed_port_exits_5(runner: CliRunner, env: dict[str, str]) -> None:
    from tests.utils.server import free_port

    assert runner.invoke(app, ["keys", "init"], env=env).exit_code == 0
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["demo-call", "--url", url], env=env)
    assert result.exit_code == ExitCode.UNREACHABLE == 5
    assert "is it serving?" in result.stderr


def test_python_dash_m_runs_the_same_app() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cds_service.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: cds-service" in result.stdout


def test_outcomes_from_a_folder_without_an_export_is_a_clear_error(
    runner: CliRunner, env: dict[str, str], tmp_path: Path
) -> None:
    """A wrong --export path used to end in a traceback once cards existed; now it is exit 3."""
    empty = tmp_path / "not-an-export"
    empty.mkdir()
    for folder in (empty, tmp_path / "missing"):
        result = runner.invoke(app, ["outcomes", "--export", str(folder)], env=env)
        assert result.exit_code == ExitCode.BAD_INPUT, result.output
        assert "no FHIR NDJSON or Bundle files" in result.output
