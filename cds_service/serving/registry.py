"""Start-up loading of hook definitions and models, and the live/shadow versions per model.

The hook file names a default version; deployment records (`cds-service promote`) override it per
environment. `refresh_deployments` swaps in a new snapshot atomically, so a promotion reaches a
running service without a restart and without a request ever seeing a half-loaded state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from cds_service.db.deployments import all_records, current_state
from cds_service.serving.hook_defs import HookDefinition, load_hook_definitions
from cds_service.serving.model_runtime import LoadedModel, ModelLoadError, load_model
from fhir_mappers.site_binding import unused_site_entries
from fhir_mappers.site_terminology import NO_SITE_TERMINOLOGY, SiteTerminology, TerminologyError
from fhir_mappers.spec import ModelSpec, SpecError, load_spec

log = logging.getLogger("cds_service.serving.registry")


@dataclass(frozen=True, slots=True)
class Serving:
    live: LoadedModel
    shadows: tuple[LoadedModel, ...] = ()


@dataclass(slots=True)
class Registry:
    services: dict[str, HookDefinition]
    models: dict[tuple[str, str], LoadedModel]
    models_dir: Path = field(default_factory=Path)
    serving: dict[str, Serving] = field(default_factory=dict)
    site: SiteTerminology = NO_SITE_TERMINOLOGY
    # Whether the deployment trail shows ``site`` for this environment: pending until the
    # database answered once (start-up never waits for it).
    site_trail: str = "pending"

    def model_for(self, hook_def: HookDefinition) -> LoadedModel:
        return self.live(hook_def.model, hook_def.model_version)

    def shadows_for(self, hook_def: HookDefinition) -> tuple[LoadedModel, ...]:
        return self.shadows(hook_def.model)

    def live(self, name: str, default_version: str) -> LoadedModel:
        """The deployed live version of a model, else the version the hook file names."""
        current = self.serving.get(name)
        if current is not None:
            return current.live
        return self.models[(name, default_version)]

    def shadows(self, name: str) -> tuple[LoadedModel, ...]:
        current = self.serving.get(name)
        return current.shadows if current is not None else ()

    def _load(self, name: str, version: str) -> LoadedModel:
        key = (name, version)
        if key not in self.models:
            self.models[key] = load_model(self.models_dir, name, version, self.site)
        return self.models[key]

    def refresh_deployments(self, engine: Engine, environment: str) -> bool:
        """Re-read deployment records; True when the serving snapshot changed."""
        try:
            records = all_records(engine)
        except SQLAlchemyError as exc:
            log.warning("deployments unreadable, keeping current models (%s)", type(exc).__name__)
            return False
        state = current_state(records, environment)
        snapshot: dict[str, Serving] = {}
        defaults: dict[str, str] = {}
        for d in self.services.values():
            for name, version in d.model_versions:
                defaults.setdefault(name, version)
        for model_name, default in sorted(defaults.items()):
            entry = state.get(model_name)
            live_version = entry.live if entry and entry.live else default
            try:
                live = self._load(model_name, live_version)
                shadows = tuple(self._load(model_name, v) for v in (entry.shadows if entry else []))
            except (ModelLoadError, SpecError, TerminologyError, OSError) as exc:
                log.error(
                    "cannot load deployed %s: %s; keeping the previous models", model_name, exc
                )
                previous = self.serving.get(model_name)
                if previous is not None:
                    snapshot[model_name] = previous
                continue
            snapshot[model_name] = Serving(live, shadows)
        changed = {k: (v.live.version, [s.version for s in v.shadows]) for k, v in snapshot.items()}
        before = {
            k: (v.live.version, [s.version for s in v.shadows]) for k, v in self.serving.items()
        }
        self.serving = snapshot
        if changed != before:
            log.info("serving models: %s", changed)
            return True
        return False


def load_registry(
    hooks_dir: Path, models_dir: Path, site: SiteTerminology = NO_SITE_TERMINOLOGY
) -> Registry:
    """Hook definitions and their models, with the site's local codes added (checked per model:
    a mapping that would change an input's meaning or unit stops the start-up)."""
    specs: dict[str, ModelSpec] = {}

    def spec_for(name: str) -> ModelSpec:
        if name not in specs:
            specs[name] = load_spec(models_dir / name / "features.toml")
        return specs[name]

    defs = load_hook_definitions(hooks_dir, spec_for)
    models: dict[tuple[str, str], LoadedModel] = {}
    for d in defs:
        for key in d.model_versions:
            if key not in models:
                models[key] = load_model(models_dir, *key, site)
    unused = unused_site_entries(site, (m.spec for m in models.values()))
    if unused:  # a national lab map covers far more codes than the models read
        log.warning(
            "site terminology: %d of its entries map to codes no served model uses, e.g. %s",
            len(unused),
            "; ".join(unused[:3]),
        )
    return Registry(
        services={d.id: d for d in defs}, models=models, models_dir=models_dir, site=site
    )
