"""Model lifecycle: the validation gate, promotion and rollback as append-only, hash-chained
deployment records (the running service derives what it serves from them), and outcomes derived
from a later FHIR export so monitoring can measure performance."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from cds_service.db.deployments import (
    ENVIRONMENTS,
    ROLES,
    ModelState,
    all_records,
    append_record,
    current_state,
    predictions_in_environment,
    record_hash,
    verify_chain,
)
from cds_service.lifecycle.site_terminology import operator_name, record_site_terminology

if TYPE_CHECKING:
    from cds_service.lifecycle.gate import GateResult, evaluate
    from cds_service.lifecycle.outcomes import OutcomeStats, derive_outcomes, export_time
    from cds_service.lifecycle.promotion import (
        PromotionRefused,
        PromotionResult,
        promote,
        retire_shadow,
        rollback,
    )

# The gate, promotion and outcomes import the statistics (scikit-learn, SciPy: ~1 s): a serving
# worker, which only records its site terminology at start-up, never loads them.
_LAZY = {
    "GateResult": "gate",
    "evaluate": "gate",
    "OutcomeStats": "outcomes",
    "derive_outcomes": "outcomes",
    "export_time": "outcomes",
    "PromotionRefused": "promotion",
    "PromotionResult": "promotion",
    "promote": "promotion",
    "retire_shadow": "promotion",
    "rollback": "promotion",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)


__all__ = [
    "ENVIRONMENTS",
    "ROLES",
    "GateResult",
    "ModelState",
    "OutcomeStats",
    "PromotionRefused",
    "PromotionResult",
    "all_records",
    "append_record",
    "current_state",
    "derive_outcomes",
    "evaluate",
    "export_time",
    "operator_name",
    "predictions_in_environment",
    "promote",
    "record_hash",
    "record_site_terminology",
    "retire_shadow",
    "rollback",
    "verify_chain",
]
