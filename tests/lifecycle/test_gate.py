"""The validation gate on its own: the committed ED model scored on a held-out synthetic export,
each threshold of training.toml able to refuse it, and the evidence it records."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sqlalchemy.engine import Engine

from cds_devtools.synth import generate_cohort
from cds_service.db.engine import make_engine, upgrade
from cds_service.lifecycle.gate import GateResult, evaluate
from cds_service.serving.model_runtime import load_model
from cds_service.training.population import scorable_mask
from cds_service.training.train import build_table
from fhir_mappers.site_terminology import load_site_terminology
from tests.conftest import MODELS_DIR
from tests.utils.site_terminology import glucose_concept_map, localize_export, write_site

MODEL = "ed-admission"


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("holdout")
    generate_cohort(out, ed_patients=600, post_mi_patients=0, seed=31)
    return out


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(MODELS_DIR / MODEL, root / MODEL)
    return root


@pytest.fixture()
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'audit.sqlite3'}")
    upgrade(engine)
    yield engine
    engine.dispose()


def _set_gate(models: Path, key: str, value: str) -> None:
    path = models / MODEL / "training.toml"
    lines = [
        f"{key} = {value}" if line.startswith(f"{key} =") else line
        for line in path.read_text().splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")


def _evaluate(
    models: Path, holdout: Path, engine: Engine, environment: str = "acceptance"
) -> GateResult:
    return evaluate(
        models, MODEL, "1.0.0", holdout, engine=engine, environment=environment, live_version=None
    )


def test_the_committed_model_passes_in_acceptance_with_its_evidence(
    models: Path, holdout: Path, engine: Engine
) -> None:
    result = _evaluate(models, holdout, engine)
    assert result.passed, result.failures
    assert result.failures == []
    ev = result.evidence
    model = load_model(models, MODEL, "1.0.0")
    table, _ = build_table(holdout, model.spec)
    scored = scorable_mask(model.spec, table.names, table.x)  # the rows the service scores
    risks = np.array([model.risk(list(row)) for row in table.x[scored]])
    assert ev["rows"] == len(table.y)
    assert ev["scored_rows"] == int(scored.sum()) < len(table.y)
    assert ev["metrics"]["auroc"] == round(roc_auc_score(table.y[scored], risks), 6)
    assert ev["candidate"]["artifact_sha256"] == model.artifact_sha256
    assert set(ev["subgroup_auroc"]) == {
        "sex=female",
        "sex=male",
        "age=0-50",
        "age=50-70",
        "age=70-200",
    }
    aurocs = [v for v in ev["subgroup_auroc"].values() if v is not None]
    assert ev["subgroup_auroc_gap"] == round(max(aurocs) - min(aurocs), 6)
    assert ev["acceptance_predictions"] is None  # only counted for production
    assert ev["thresholds"]["min_auroc"] == 0.75
    assert ev["report"].endswith("PASSED")


@pytest.mark.parametrize(
    ("key", "value", "failure"),
    [
        ("min_auroc", "0.999", "AUROC"),
        ("max_abs_calibration_intercept", "0.0", "calibration intercept"),
        ("calibration_slope_range", "[5.0, 6.0]", "calibration slope"),
        ("max_subgroup_auroc_gap", "0.0", "subgroup AUROC gap"),
    ],
)
def test_each_threshold_can_refuse(
    models: Path, holdout: Path, engine: Engine, key: str, value: str, failure: str
) -> None:
    _set_gate(models, key, value)
    result = _evaluate(models, holdout, engine)
    assert not result.passed
    assert len(result.failures) == 1
    assert result.failures[0].startswith(failure)
    assert result.evidence["failures"] == result.failures
    assert "FAILED: " + result.failures[0] in result.evidence["report"]


def test_a_held_out_export_whose_positives_the_service_cannot_score_is_refused(
    models: Path, holdout: Path, engine: Engine
) -> None:
    """The same population rule as training: the gate judges the rows the service scores, and
    refuses when those leave out too many of the positives."""
    result = _evaluate(models, holdout, engine)
    ev = result.evidence
    assert ev["unscorable_positives"] > 0  # the synthetic held-out export has a few
    assert ev["scored_rows"] == ev["rows"] - ev["unscorable_rows"]
    all_positives = int(sum(build_table(holdout, load_model(models, MODEL, "1.0.0").spec)[0].y))
    share = ev["unscorable_positives"] / all_positives
    path = models / MODEL / "training.toml"
    path.write_text(path.read_text() + f"\n[table]\nmax_unscorable_positive_share = {share / 2}\n")
    refused = _evaluate(models, holdout, engine)
    assert not refused.passed
    assert refused.failures == [refused.failures[0]]
    assert "lack a required input" in refused.failures[0]
    assert set(ev["unscorable_for"]) <= {"heart_rate", "systolic_bp"}


def test_production_needs_predictions_in_acceptance(
    models: Path, holdout: Path, engine: Engine
) -> None:
    result = _evaluate(models, holdout, engine, environment="production")
    assert result.failures == ["ran 0 predictions in acceptance; production needs 200"]
    assert result.evidence["acceptance_predictions"] == 0


def test_an_export_without_rows_fails(models: Path, tmp_path: Path, engine: Engine) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for resource in ("Patient", "Encounter", "Condition", "Observation"):
        (empty / f"{resource}.ndjson").write_text("")
    result = _evaluate(models, empty, engine)
    assert not result.passed
    assert result.failures == ["held-out export gave no rows"]


def test_a_candidate_is_compared_with_the_live_version(
    models: Path, holdout: Path, engine: Engine
) -> None:
    # The same artifact as "0.9.0": equal AUROC passes with the default tolerance, and fails when
    # the gate demands a candidate better than live by 0.1.
    shutil.copytree(models / MODEL / "1.0.0", models / MODEL / "0.9.0")
    same = evaluate(
        models,
        MODEL,
        "1.0.0",
        holdout,
        engine=engine,
        environment="acceptance",
        live_version="0.9.0",
    )
    assert same.passed, same.failures
    assert same.evidence["live_metrics"] == same.evidence["metrics"]
    _set_gate(models, "max_auroc_drop_vs_live", "-0.1")
    worse = evaluate(
        models,
        MODEL,
        "1.0.0",
        holdout,
        engine=engine,
        environment="acceptance",
        live_version="0.9.0",
    )
    assert len(worse.failures) == 1
    assert worse.failures[0].startswith("AUROC ")
    assert "worse than the live version 0.9.0" in worse.failures[0]


def test_the_held_out_export_is_read_with_the_site_terminology(
    models: Path, holdout: Path, engine: Engine, tmp_path: Path
) -> None:
    """A hospital whose lab sends glucose under its own code validates with its ConceptMap, as it
    serves: read with the site folder, the localized export gives the table of the LOINC one."""
    localized = localize_export(shutil.copytree(holdout, tmp_path / "localized"))
    site = load_site_terminology(write_site(tmp_path / "site", glucose_concept_map()))
    reference = _evaluate(models, holdout, engine).evidence
    unmapped = _evaluate(models, localized, engine).evidence
    mapped = evaluate(
        models,
        MODEL,
        "1.0.0",
        localized,
        engine=engine,
        environment="acceptance",
        live_version=None,
        site=site,
    ).evidence
    assert unmapped["held_out_table_sha256"] != reference["held_out_table_sha256"]
    assert mapped["held_out_table_sha256"] == reference["held_out_table_sha256"]
    assert mapped["metrics"] == reference["metrics"]
    assert mapped["terminology_sha256"] == site.sha256 != reference["terminology_sha256"]
