"""The training population: rows lacking a required input are kept and reported, and training
refuses when the service would score too few of the positives."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cds_service.training.config import ConfigError, load_training_config
from cds_service.training.population import (
    PopulationError,
    check_population,
    population_summary,
)
from fhir_mappers.bulk import TableStats
from tests.conftest import MODELS_DIR


def _stats(rows: int, positives: int, unscorable: int, unscorable_positives: int) -> TableStats:
    return TableStats(
        rows=rows,
        positives=positives,
        unscorable=unscorable,
        unscorable_positives=unscorable_positives,
        unscorable_for=Counter({"systolic_bp": unscorable, "heart_rate": unscorable // 2}),
    )


def test_summary_gives_both_label_balances_and_the_missing_inputs() -> None:
    assert population_summary(_stats(271, 63, 63, 63)) == [
        "kept 271 rows (every index event), 63 positive (23.2%); dropped 0",
        "scored by the service: 208 rows, 0 positive",
        "lacking a required input: 63 rows, 63 positive (100.0% of all positives); kept for "
        "training with the input missing, left out of calibration and evaluation, shown no risk "
        "by the service",
        "missing among them: systolic_bp 63, heart_rate 31",
    ]


def test_refuses_when_the_unscored_rows_hold_too_many_positives() -> None:
    """The clinosim case of the issue: every admitted ED visit lacked a required input."""
    with pytest.raises(PopulationError) as caught:
        check_population(_stats(271, 63, 63, 63), 0.2)
    message = str(caught.value)
    assert "63 of 63 positive rows (100.0%)" in message
    assert "(systolic_bp, heart_rate)" in message
    assert "max_unscorable_positive_share" in message


@pytest.mark.parametrize(
    ("positives", "unscorable_positives", "share", "refused"),
    [(100, 20, 0.2, False), (100, 21, 0.2, True), (100, 0, 0.0, False), (0, 0, 0.2, False)],
)
def test_the_share_is_of_all_positives(
    positives: int, unscorable_positives: int, share: float, refused: bool
) -> None:
    stats = _stats(1000, positives, 50, unscorable_positives)
    if refused:
        with pytest.raises(PopulationError):
            check_population(stats, share)
    else:
        check_population(stats, share)


def test_the_share_comes_from_training_toml(tmp_path: Path) -> None:
    base = (MODELS_DIR / "ed-admission" / "training.toml").read_text()
    assert (
        load_training_config(
            MODELS_DIR / "ed-admission" / "training.toml"
        ).max_unscorable_positive_share
        == 0.2
    )
    path = tmp_path / "training.toml"
    path.write_text(base + "\n[table]\nmax_unscorable_positive_share = 0.05\n")
    assert load_training_config(path).max_unscorable_positive_share == 0.05
    path.write_text(base + "\n[table]\nmax_unscorable_positive_share = 1.5\n")
    with pytest.raises(ConfigError, match="between 0 and 1"):
        load_training_config(path)
    path.write_text(base + "\n[table]\nmax_dropped_positive_share = 0.05\n")
    with pytest.raises(ConfigError, match=r"now table\.max_unscorable_positive_share"):
        load_training_config(path)


def test_train_refuses_an_export_whose_positives_the_service_cannot_score(
    tmp_path: Path, fhir: object
) -> None:
    import shutil

    from cds_service.training.train import train_model
    from tests.utils.exports import write_ed_export

    export = write_ed_export(tmp_path / "export", fhir)  # p3's admitted visit lacks vitals
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR / "ed-admission", models / "ed-admission")
    before = {f: f.read_bytes() for f in models.rglob("*") if f.is_file()}
    with pytest.raises(PopulationError, match=r"1 of 2 positive rows \(50.0%\)"):
        train_model("ed-admission", models_dir=models, export_dir=export, progress=False)
    after = {f: f.read_bytes() for f in models.rglob("*") if f.is_file()}
    assert after == before, "a refused training must not write an artifact"
