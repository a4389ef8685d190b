"""Searches everything the end-to-end tests logged at DEBUG (and every span they recorded) for
the fixture patients' identifiers, names and birth dates.

In a full run the suite's own output is searched (the test runs last); run on its own, it runs
the end-to-end tests in a subprocess first."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace

from tests.conftest import PHI_SWEEP_TEST, REPO_ROOT

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


SWEPT = ("tests/integration", "tests/cds_hooks")


def _swept_in_this_session(session: pytest.Session) -> bool:
    """True when this run already ran end-to-end tests (the whole suite): their output is in the
    session's log file (tests/conftest.py captures it), so nothing needs to run twice."""
    return any(
        item.name != PHI_SWEEP_TEST
        and Path(str(item.path)).resolve().relative_to(REPO_ROOT).as_posix().startswith(SWEPT)
        for item in session.items
    )


def _flush() -> None:
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush()
    for handler in logging.getLogger().handlers:
        handler.flush()


@pytest.mark.slow
def test_end_to_end_suite_logs_no_patient_data(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if os.environ.get("CDS_PHI_SWEEP_CHILD"):
        pytest.skip("inside the sweep")
    if _swept_in_this_session(request.session):
        _flush()
        log_file = Path(os.environ["CDS_TEST_LOG_FILE"])
    else:  # run on its own: run the end-to-end tests in a child that logs into a file
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
                *SWEPT,
                "-k",
                f"not {PHI_SWEEP_TEST}",
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
