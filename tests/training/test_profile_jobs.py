"""`cds-service profile --jobs N`: the coverage report of two processes is the one of one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds_devtools.synth import generate_cohort
from cds_service.training.profile import profile_export
from cds_service.training.profile_report import html_report, text_report
from fhir_mappers.spec import load_spec
from tests.conftest import MODELS_DIR


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    generate_cohort(out, ed_patients=50, post_mi_patients=10, seed=13)
    return out


@pytest.mark.parametrize("model", ["ed-admission", "post-mi-unplanned-visit"])
def test_two_processes_profile_as_one(export, model):
    spec = load_spec(MODELS_DIR / model / "features.toml")
    one = profile_export(export, spec, model, jobs=1)
    two = profile_export(export, spec, model, jobs=2)
    assert text_report(one, spec) == text_report(two, spec)
    assert html_report(one, spec) == html_report(two, spec)
    assert one.events > 0 and one.codes
    assert one.stats.patients == 60
