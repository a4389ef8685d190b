"""A hospital's local lab code through a site ConceptMap, on a real server and real databases.

Without the site folder the local glucose code is "no value"; with it the same model file fills
glucose, and the audit row (v_cards) names the terminology it was read with. A folder that would
change an input's meaning stops the start-up; in acceptance a change of folder is one record in
the hash-chained deployment trail, however many workers start with it.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.db.deployments import TERMINOLOGY_RECORD, verify_chain
from cds_service.main import create_app
from cds_service.serving.registry import load_registry
from fhir_mappers.site_terminology import (
    EMPTY_TERMINOLOGY_SHA256,
    TerminologyError,
    load_site_terminology,
)
from tests.conftest import REPO_ROOT
from tests.utils.server import ServerThread, free_port
from tests.utils.service import (
    BACKENDS,
    NOW,
    Database,
    Service,
    make_settings,
    new_database,
    running_service,
)
from tests.utils.site_terminology import (
    LAB,
    LOCAL_GLUCOSE,
    glucose_concept_map,
    localize_glucose,
    write_site,
)

ED = "ed-admission-risk"
OPERATOR = "site-it@example-hospital.nl"


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _local_glucose_call(svc: Service) -> dict[str, Any]:
    case = ed_case(NOW, sick=True)
    case["observations"] = [localize_glucose(o) for o in case["observations"]]
    body = hook_body(
        "encounter-start",
        case["patient"]["id"],
        ed_prefetch(case),
        encounter_id=case["encounter_id"],
    )
    r = svc.call(ED, body)
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    return svc.card_row(card["uuid"])


def test_local_glucose_code_fills_the_feature_only_with_the_site_concept_map(
    backend: str, tmp_path: Path
) -> None:
    for svc in running_service(backend, tmp_path / "without"):
        plain = _local_glucose_call(svc)
    assert "glucose" in json.loads(plain["missing_features"])
    assert plain["terminology_sha256"] == EMPTY_TERMINOLOGY_SHA256

    folder = write_site(tmp_path / "site", glucose_concept_map())
    site_sha = load_site_terminology(folder).sha256
    for svc in running_service(backend, tmp_path / "with", site_terminology_dir=folder):
        row = _local_glucose_call(svc)
        health = svc.client.get("/healthz").json()["site_terminology"]
        assert health["sha256"] == site_sha and health["files"] == 1
    assert "glucose" not in json.loads(row["missing_features"])
    assert json.loads(row["features"])["glucose"] == pytest.approx(180 / 18.0156, rel=1e-3)
    assert row["card_kind"] == "risk" and row["risk"] is not None
    # the same model file and version scored; only what it saw (and the hash saying so) differs
    assert (row["model_version"], row["artifact_sha256"]) == (
        plain["model_version"],
        plain["artifact_sha256"],
    )
    assert row["terminology_sha256"] == site_sha != EMPTY_TERMINOLOGY_SHA256


def _copy(tmp: Path) -> tuple[Path, Path]:
    import shutil

    shutil.copytree(REPO_ROOT / "models", tmp / "models")
    shutil.copytree(REPO_ROOT / "hooks", tmp / "hooks")
    return tmp / "hooks", tmp / "models"


REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    (
        "two inputs",
        glucose_concept_map(extra_target="2160-0"),
        r"element 'GLU-P' target #2.*feature creatinine.*feature glucose",
    ),
    ("equivalence", glucose_concept_map("narrower"), r"target #1: equivalence 'narrower'"),
    ("equivalence", glucose_concept_map("inexact"), r"target #1: equivalence 'inexact'"),
    ("unit", glucose_concept_map(unit="g"), r"unit 'g' of .*GLU-P does not convert.*glucose"),
]


@pytest.mark.parametrize(("case", "resource", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_inconsistent_site_terminology_refuses_start_up(
    tmp_path: Path, case: str, resource: dict[str, Any], message: str
) -> None:
    hooks, models = _copy(tmp_path)
    folder = write_site(tmp_path / "site", resource)
    with pytest.raises(TerminologyError, match=message) as info:  # what start-up runs
        load_registry(hooks, models, load_site_terminology(folder))
    assert str(info.value).startswith("00-conceptmap.json ConceptMap https://lab.example")


def test_target_code_no_model_uses_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hooks, models = _copy(tmp_path)
    unused = glucose_concept_map()
    unused["group"][0]["element"].append(
        {"code": "NA", "target": [{"code": "2951-2", "equivalence": "equivalent"}]}
    )
    with caplog.at_level(logging.WARNING, logger="cds_service"):
        registry = load_registry(
            hooks, models, load_site_terminology(write_site(tmp_path / "site", unused))
        )
    assert (
        f"{LAB}|{LOCAL_GLUCOSE}"
        in registry.models[("ed-admission", "1.0.0")].spec.feature("glucose").codes
    )
    assert "1 of its entries map to codes no served model uses" in caplog.text
    assert "element 'NA'" in caplog.text


def test_serve_does_not_start_with_a_refused_folder(tmp_path: Path) -> None:
    """`cds-service serve` as hospital IT runs it: the error names the file and the element."""
    folder = write_site(tmp_path / "site", glucose_concept_map("relatedto"))
    env = dict(
        os.environ,
        CDS_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.sqlite3'}",
        CDS_SPOOL_DIR=str(tmp_path / "spool"),
        CDS_SITE_TERMINOLOGY_DIR=str(folder),
        CDS_DATA_DIR=str(tmp_path / "data"),  # a first start writes its local caller there
    )
    cmd = [sys.executable, "-m", "cds_service.cli", "serve", "--port", str(free_port())]
    result = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode != 0
    assert "site terminology refused, not starting: 00-conceptmap.json ConceptMap" in result.stderr
    assert "element 'GLU-P' target #1: equivalence 'relatedto' is refused" in result.stderr


# --- the deployment trail (acceptance) ------------------------------------------------------


def _wait_for(check: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _acceptance(db: Database, tmp: Path, folder: Path | None, environment: str) -> ServerThread:
    tmp.mkdir(parents=True, exist_ok=True)
    callers = tmp / "callers.json"
    callers.write_text("[]")
    settings = make_settings(
        db.url,
        tmp,
        environment=environment,
        pseudonym_key="acceptance-test-pseudonym-key-0123",
        trusted_issuers=callers,
        auth_disabled=False,
        migrate_on_start=True,
        site_terminology_dir=folder,
        operator=OPERATOR,
    )
    return ServerThread(create_app(settings, clock=lambda: NOW))


def _start_checked(servers: list[ServerThread]) -> None:
    """Start the workers together and wait until each has checked the trail."""
    for server in servers:
        server.__enter__()
    for server in servers:
        with httpx.Client(base_url=server.url) as client:

            def checked(c: httpx.Client = client) -> bool:
                return bool(c.get("/healthz").json()["site_terminology"]["trail"] != "pending")

            assert _wait_for(checked)


def _stop(servers: list[ServerThread]) -> None:
    for server in servers:
        server.__exit__(None, None, None)


def _trail(db: Database, environment: str = "acceptance") -> list[dict[str, Any]]:
    return db.rows(
        "SELECT * FROM v_deployments WHERE model_name = :m AND environment = :e ORDER BY seq",
        m=TERMINOLOGY_RECORD,
        e=environment,
    )


def test_a_changed_site_folder_is_one_trail_record_per_change(backend: str, tmp_path: Path) -> None:
    db = new_database(backend, tmp_path)
    v1 = write_site(tmp_path / "v1", glucose_concept_map())
    v2 = write_site(tmp_path / "v2", glucose_concept_map(unit="mg/dL"))
    try:
        first = [_acceptance(db, tmp_path / "a", v1, "acceptance")]
        _start_checked(first)
        _stop(first)
        trail = _trail(db)
        assert len(trail) == 1
        record = trail[0]
        sha1 = load_site_terminology(v1).sha256
        assert (record["artifact_sha256"], record["action"]) == (sha1, "terminology")
        assert record["decided_by"] == OPERATOR
        assert record["reason"] == "site terminology changed"
        evidence = json.loads(record["evidence"])
        assert evidence["terminology_sha256"] == sha1
        assert evidence["files"] == ["00-conceptmap.json"]

        # a restart with two workers and the same folder records nothing
        restart = [_acceptance(db, tmp_path / f"w{i}", v1, "acceptance") for i in range(2)]
        _start_checked(restart)
        _stop(restart)
        assert len(_trail(db)) == 1

        # a new folder: one record, however many workers start with it
        changed = [_acceptance(db, tmp_path / f"c{i}", v2, "acceptance") for i in range(2)]
        _start_checked(changed)
        _stop(changed)
        # and removing the folder is a change too
        removed = [_acceptance(db, tmp_path / "r", None, "acceptance")]
        _start_checked(removed)
        _stop(removed)
        hashes = [r["artifact_sha256"] for r in _trail(db)]
        assert hashes == [sha1, load_site_terminology(v2).sha256, EMPTY_TERMINOLOGY_SHA256]
        assert verify_chain(db.engine) == []
        assert _trail(db, "production") == []
    finally:
        db.close()


def test_development_keeps_no_terminology_trail(tmp_path: Path) -> None:
    db = new_database("sqlite", tmp_path)
    folder = write_site(tmp_path / "site", glucose_concept_map())
    try:
        server = [_acceptance(db, tmp_path / "d", folder, "development")]
        _start_checked(server)
        with httpx.Client(base_url=server[0].url) as client:
            trail = client.get("/healthz").json()["site_terminology"]["trail"]
        _stop(server)
        assert trail == "not kept here"
        assert _trail(db, "development") == []
    finally:
        db.close()
