"""Data no one here wrote: clinosim and Synthea exports, generated once per test run and cached.

The cache folder is ``$CDS_TEST_DATA_CACHE`` when set (CI can keep it between jobs), else
pytest's cache folder (``.pytest_cache``, kept between local runs), else a temporary folder.
Outputs are keyed by generator version and arguments (tests/utils/generators.py), so a cached
export is exactly what the generator would write again.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.utils.generators import CLINOSIM, SYNTHEA, Generated, generate_all


def _cache_dir(config: pytest.Config, factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("CDS_TEST_DATA_CACHE")
    if env:
        return Path(env)
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("thirdparty-fhir"))
    return factory.mktemp("thirdparty-fhir")


@pytest.fixture(scope="session")
def generated(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Generated]:
    """Both generators' outputs; missing ones are generated concurrently, as subprocesses."""
    return generate_all(_cache_dir(pytestconfig, tmp_path_factory), (CLINOSIM, SYNTHEA))


def _path(generated: dict[str, Generated], name: str) -> Path:
    out = generated[name]
    if out.path is None:
        pytest.skip(out.reason)
    return out.path


@pytest.fixture(scope="session")
def clinosim_export(generated: dict[str, Generated]) -> Path:
    """clinosim's FHIR R4 Bulk-style export: one NDJSON file per resource type."""
    return _path(generated, "clinosim")


@pytest.fixture(scope="session")
def synthea_bundles(generated: dict[str, Generated]) -> Path:
    """Synthea's output: one transaction Bundle per patient (urn:uuid references), plus the
    hospital and practitioner Bundles."""
    return _path(generated, "synthea")
