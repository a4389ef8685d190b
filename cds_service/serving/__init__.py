"""What is served: hook definitions (``hooks/*.toml``), the models they name, and which version is
live or shadow in this environment (deployment records, refreshed while running).

``routes`` (model cards, manifests, health) is imported by the app factory, not re-exported here.
"""

from cds_service.serving.hook_defs import (
    Band,
    HookDefinition,
    HookDefinitionError,
    load_hook_definitions,
)
from cds_service.serving.model_runtime import LoadedModel, ModelLoadError, Prediction, load_model
from cds_service.serving.registry import Registry, Serving, load_registry

__all__ = [
    "Band",
    "HookDefinition",
    "HookDefinitionError",
    "LoadedModel",
    "ModelLoadError",
    "Prediction",
    "Registry",
    "Serving",
    "load_hook_definitions",
    "load_model",
    "load_registry",
]
