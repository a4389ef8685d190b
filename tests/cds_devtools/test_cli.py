"""``python -m cds_devtools``: the developer tools' own entry point, outside the service wheel."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cds_devtools.cli import app
from cds_devtools.synth import RESOURCE_TYPES, generate_cohort
from cds_service.cli import ExitCode

ROOT = Path(__file__).resolve().parents[2]


def run_module(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cds_devtools", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": "/usr/bin:/bin", "CDS_DATA_DIR": str(data_dir)},
    )


def test_synth_writes_the_same_bytes_as_generate_cohort(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    result = run_module(
        "synth",
        "--out",
        str(out),
        "--ed-patients",
        "6",
        "--post-mi-patients",
        "3",
        "--seed",
        "7",
        "--no-progress",
        data_dir=tmp_path / "data",
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    counts = {entry["type"]: entry["count"] for entry in manifest["output"]}
    for rtype in RESOURCE_TYPES:
        assert f"{rtype}: {counts[rtype]}" in result.stdout.splitlines()
    assert f"written to {out}" in result.stdout

    direct = tmp_path / "direct"
    generate_cohort(direct, ed_patients=6, post_mi_patients=3, seed=7)
    for name in [f"{rt}.ndjson" for rt in RESOURCE_TYPES] + ["manifest.json"]:
        assert (out / name).read_bytes() == (direct / name).read_bytes(), name


def test_help_lists_both_tools(tmp_path: Path) -> None:
    result = run_module("--help", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m cds_devtools" in result.stdout
    assert "synth" in result.stdout
    assert "simulate" in result.stdout


@pytest.mark.parametrize("command", ["synth", "simulate"])
def test_command_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--seed" in result.output


def test_negative_cohort_size_exits_3(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["synth", "--out", str(tmp_path / "x"), "--ed-patients", "-1", "--no-progress"]
    )
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "must not be negative" in result.stderr
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_simulate_without_a_local_key_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CDS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'sim.sqlite3'}")
    result = CliRunner().invoke(app, ["simulate", "--days", "1"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "keys init" in result.stderr
    assert "--no-sign" in result.stderr
