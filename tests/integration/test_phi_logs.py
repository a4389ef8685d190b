"""Runs the whole end-to-end suite with logging at DEBUG (and tracing on) in a subprocess, then
searches the captured logs and spans for the fixture patients' identifiers, names and birth
dates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SECRETS = (
    "syn-ed-1",
    "syn-ed-2",
    "syn-mi-1",
    "syn-other",
    "syn-out-",
    "syn-pg-",
    "Zzyzxsynthetic",
    "Testa",
    "SYN-MRN-4711",
    "1941-04-01",
    "1990-07-07",
    "1956-09-09",
    "1948-02-03",
    "tok-123",
    "secret-token-xyz",
    "synthetic-access-token",
)


@pytest.mark.slow
def test_end_to_end_suite_logs_no_patient_data(tmp_path: Path) -> None:
    if os.environ.get("CDS_PHI_SWEEP_CHILD"):
        pytest.skip("inside the sweep")
    log_file = tmp_path / "debug.log"
    env = dict(os.environ, CDS_PHI_SWEEP_CHILD="1", CDS_TEST_LOG_FILE=str(log_file))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration",
            "tests/cds_hooks",
            "-k",
            "not test_end_to_end_suite_logs_no_patient_data",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = log_file.read_text(encoding="utf-8")
    assert "card returned" in text, "the sweep captured no service logs"
    assert "cds.service_call" in text, "the sweep captured no spans"
    found = [s for s in SECRETS if s in text]
    assert not found, f"patient data in logs or spans: {found}"
