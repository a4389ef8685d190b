"""Model lifecycle: validation gate, hash-chained deployment records, rollback, shadow scoring and
hot pick-up of promotions by a running service. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import respx
import sqlalchemy as sa

from cds_devtools.synth import generate_cohort
from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.db.deployments import all_records, verify_chain
from cds_service.db.tables import CardAudit
from cds_service.lifecycle.promotion import PromotionRefused, promote, rollback
from cds_service.main import create_app
from cds_service.training.train import train_model
from tests.conftest import MODELS_DIR, REPO_ROOT
from tests.utils.server import ServerThread
from tests.utils.service import BACKENDS, NOW, Database, make_settings, new_database

MODEL = "ed-admission"


@dataclass
class World:
    models: Path
    holdout: Path
    db: Database
    tmp: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A models folder with the committed 1.0.0, a good 2.0.0 and a deliberately weak 0.1.0."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    models = tmp / "models"
    shutil.copytree(MODELS_DIR, models)
    export = tmp / "train-export"
    generate_cohort(export, ed_patients=1500, post_mi_patients=0, seed=11)
    train_model(MODEL, models_dir=models, export_dir=export, version="2.0.0")
    weak = models / MODEL / "training.toml"
    original = weak.read_text()
    weak.write_text(
        original.replace("num_boost_round = 150", "num_boost_round = 1")
        .replace("num_leaves = 15", "num_leaves = 2")
        .replace("feature_fraction = 0.9", "feature_fraction = 0.1")
    )
    train_model(MODEL, models_dir=models, export_dir=export, version="0.1.0")
    weak.write_text(original)
    holdout = tmp / "holdout"
    generate_cohort(holdout, ed_patients=800, post_mi_patients=0, seed=12)
    return models, holdout


@pytest.fixture(params=BACKENDS)
def world(
    request: pytest.FixtureRequest, trained: tuple[Path, Path], tmp_path: Path
) -> Iterator[World]:
    db = new_database(str(request.param), tmp_path)
    from cds_service.db.engine import upgrade

    upgrade(db.engine)
    yield World(trained[0], trained[1], db, tmp_path)
    db.close()


def _promote(
    w: World, version: str, env: str = "acceptance", role: str = "live", override: str | None = None
) -> dict:  # type: ignore[type-arg]
    return promote(
        w.db.engine,
        w.models,
        MODEL,
        version,
        environment=env,
        role=role,
        by="Dr. Quality",
        reason=f"test promotion of {version}",
        holdout=w.holdout,
        override_reason=override,
    ).record


def test_gate_refuses_a_worse_model_and_accepts_a_better_one(world: World) -> None:
    good = _promote(world, "2.0.0")
    evidence = json.loads(good["evidence"])
    assert evidence["metrics"]["auroc"] > 0.75 and not evidence["failures"]
    assert evidence["held_out_export_sha256"]
    with pytest.raises(PromotionRefused) as refused:
        _promote(world, "0.1.0")
    assert any("AUROC" in f for f in refused.value.failures)
    assert len(all_records(world.db.engine)) == 1  # a refused promotion leaves no record


def test_override_is_recorded_with_its_reason(world: World) -> None:
    rec = _promote(world, "0.1.0", override="urgent test of the override path")
    assert rec["override"] is True or rec["override"] == 1
    assert rec["override_reason"] == "urgent test of the override path"
    assert json.loads(rec["evidence"])["failures"]


def test_production_requires_a_run_in_acceptance(world: World) -> None:
    with pytest.raises(PromotionRefused, match="in acceptance"):
        _promote(world, "2.0.0", env="production")
    rows = [
        {
            "card_uuid": f"00000000-0000-0000-0000-{i:012d}",
            "hook_instance": f"h{i}",
            "service_id": "ed-admission-risk",
            "hook": "encounter-start",
            "model_name": MODEL,
            "model_version": "2.0.0",
            "artifact_sha256": "x" * 64,
            "environment": "acceptance",
            "role": "shadow",
            "shown": False,
            "card_kind": "risk",
            "patient_pseudonym": "p" * 64,
            "requested_at": NOW,
            "risk": 0.3,
            "latency_ms": 1.0,
            "features": "{}",
            "missing_features": "[]",
            "inputs": "{}",
            "mapper_warnings": "{}",
            "summary": "s",
        }
        for i in range(200)
    ]
    with world.db.engine.begin() as conn:
        conn.execute(CardAudit.__table__.insert(), rows)  # type: ignore[attr-defined]
    assert _promote(world, "2.0.0", env="production")["environment"] == "production"


def test_chain_check_detects_edited_and_deleted_records(world: World) -> None:
    _promote(world, "2.0.0")
    _promote(world, "1.0.0", role="shadow")
    _promote(world, "1.0.0", env="development")
    assert verify_chain(world.db.engine) == []
    with world.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE deployments SET reason = 'edited later' WHERE id = 2"))
    problems = verify_chain(world.db.engine)
    assert problems and "record 2" in problems[0]
    with world.db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE deployments SET reason = 'test promotion of 1.0.0' WHERE id = 2")
        )
    assert verify_chain(world.db.engine) == []
    with world.db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM deployments WHERE id = 2"))
    assert any("link broken" in p for p in verify_chain(world.db.engine))


def test_rollback_restores_the_previous_live_version(world: World) -> None:
    _promote(world, "1.0.0")
    _promote(world, "2.0.0")
    rec = rollback(
        world.db.engine,
        world.models,
        MODEL,
        environment="acceptance",
        by="Dr. Quality",
        reason="calibration complaint",
    )
    assert rec["model_version"] == "1.0.0" and rec["action"] == "rollback"
    with pytest.raises(ValueError, match="no earlier live version"):
        rollback(world.db.engine, world.models, MODEL, environment="production", by="x", reason="y")


def test_running_service_picks_up_promotions_and_never_shows_shadow_cards(world: World) -> None:
    settings = make_settings(
        world.db.url,
        world.tmp,
        models_dir=world.models,
        hooks_dir=REPO_ROOT / "hooks",
        environment="acceptance",
        pseudonym_key="acceptance-test-key-0123456789",
        auth_disabled=False,
        trusted_issuers=_no_callers(world.tmp),
        deployment_refresh_seconds=0.2,
    )
    settings.auth_disabled = True  # acceptance refuses this at start-up; set after validation
    app = create_app(
        settings, clock=lambda: NOW, transport=httpx.MockTransport(respx.MockRouter().async_handler)
    )

    def call(client: httpx.Client) -> httpx.Response:
        case = ed_case(NOW)
        body = hook_body(
            "encounter-start", "syn-ed-1", ed_prefetch(case), encounter_id=case["encounter_id"]
        )
        return client.post("/cds-services/ed-admission-risk", json=body)

    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=20) as client:
        first = call(client)
        assert "ed-admission 1.0.0" in first.json()["cards"][0]["detail"]
        _promote(world, "2.0.0", role="shadow")
        time.sleep(0.8)
        r = call(client)
        cards = r.json()["cards"]
        assert len(cards) == 1 and "ed-admission 1.0.0" in cards[0]["detail"]
        time.sleep(0.5)  # shadow rows are written after the response
        rows = world.db.rows(
            "SELECT card_uuid, model_version, role, shown FROM card_audit WHERE hook_instance = "
            "(SELECT hook_instance FROM card_audit WHERE card_uuid = :u)",
            u=cards[0]["uuid"],
        )
        roles = {(row["model_version"], row["role"], bool(row["shown"])) for row in rows}
        assert roles == {("1.0.0", "live", True), ("2.0.0", "shadow", False)}
        shadow_uuid = next(row["card_uuid"] for row in rows if row["role"] == "shadow")
        assert shadow_uuid not in r.text

        statuses: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=server.url, timeout=20) as c:
                while not stop.is_set():
                    statuses.append(call(c).status_code)

        worker = threading.Thread(target=hammer)
        worker.start()
        _promote(world, "2.0.0", role="live")
        time.sleep(1.0)
        stop.set()
        worker.join()
        assert statuses and set(statuses) == {200}, "requests dropped during the switch"
        assert "ed-admission 2.0.0" in call(client).json()["cards"][0]["detail"]


def _no_callers(tmp: Path) -> Path:
    path = tmp / "callers.json"
    path.write_text("[]")
    return path
