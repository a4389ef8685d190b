"""``table``/``train``/``profile`` take the site terminology like the service does."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from cds_devtools.synth import generate_cohort
from cds_service.cli import ExitCode, app
from fhir_mappers.site_terminology import load_site_terminology
from tests.utils.site_terminology import glucose_concept_map, localize_export, write_site


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export")
    generate_cohort(out, ed_patients=40, post_mi_patients=2, seed=5)
    return localize_export(out)


def _glucose_filled(csv: Path) -> int:
    lines = csv.read_text().splitlines()
    column = lines[0].split(",").index("glucose")
    return sum(1 for line in lines[1:] if line.split(",")[column] != "")


def test_table_reads_local_codes_from_the_env_folder(export: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    folder = write_site(tmp_path / "site", glucose_concept_map())
    plain, mapped = tmp_path / "plain.csv", tmp_path / "mapped.csv"
    args = ["table", "ed-admission", "--export", str(export), "--no-progress"]
    first = runner.invoke(app, [*args, "--out", str(plain)], env={"CDS_SITE_TERMINOLOGY_DIR": ""})
    assert first.exit_code == 0, first.output
    second = runner.invoke(
        app, [*args, "--out", str(mapped)], env={"CDS_SITE_TERMINOLOGY_DIR": str(folder)}
    )
    assert second.exit_code == 0, second.output
    assert f"site terminology sha256: {load_site_terminology(folder).sha256}" in second.output
    assert _glucose_filled(plain) == 0 < _glucose_filled(mapped)


@pytest.mark.parametrize("command", ["table", "train", "profile"])
def test_refused_site_terminology_is_bad_input(export: Path, tmp_path: Path, command: str) -> None:
    folder = write_site(tmp_path / "site", glucose_concept_map(unit="g"))
    result = CliRunner().invoke(
        app,
        [command, "ed-admission", "--export", str(export), "--site-terminology", str(folder)],
    )
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "error: site terminology refused: 00-conceptmap.json ConceptMap" in result.output
    assert "unit 'g' of" in result.output
