"""Start-up loading: hook definitions and the model artifacts they name, checked together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cds_service.hook_defs import HookDefinition, load_hook_definitions
from cds_service.model_runtime import LoadedModel, load_model
from fhir_mappers.spec import ModelSpec, load_spec


@dataclass(slots=True)
class Registry:
    services: dict[str, HookDefinition]
    models: dict[tuple[str, str], LoadedModel]

    def model_for(self, hook_def: HookDefinition) -> LoadedModel:
        return self.models[(hook_def.model, hook_def.model_version)]


def load_registry(hooks_dir: Path, models_dir: Path) -> Registry:
    specs: dict[str, ModelSpec] = {}

    def spec_for(name: str) -> ModelSpec:
        if name not in specs:
            specs[name] = load_spec(models_dir / name / "features.toml")
        return specs[name]

    defs = load_hook_definitions(hooks_dir, spec_for)
    models: dict[tuple[str, str], LoadedModel] = {}
    for d in defs:
        key = (d.model, d.model_version)
        if key not in models:
            models[key] = load_model(models_dir, d.model, d.model_version)
    return Registry(services={d.id: d for d in defs}, models=models)
