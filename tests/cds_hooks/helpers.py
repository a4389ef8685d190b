"""Hook definitions and specs of the bundled services, loaded once for the unit tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from cds_service.serving.hook_defs import HookDefinition, load_hook_definitions
from fhir_mappers.spec import ModelSpec, load_spec

ROOT = Path(__file__).resolve().parent.parent.parent


@cache
def spec(model: str) -> ModelSpec:
    return load_spec(ROOT / "models" / model / "features.toml")


@cache
def hook_definitions() -> dict[str, HookDefinition]:
    return {d.id: d for d in load_hook_definitions(ROOT / "hooks", spec)}
