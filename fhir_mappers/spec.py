"""Declarative feature specifications (``models/<model>/features.toml``).

One spec drives both the training table and the live feature vector, so a model can never be
served with features computed differently from the ones it learned on. The format is documented in
``docs/feature-spec.md``; everything here validates it strictly, because a typo in a spec must fail
loudly at load time, not produce a silently missing feature in a physician's card.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fhir_mappers.timeutil import parse_duration

SOURCES = ("observation", "encounter", "condition", "patient")
AGGREGATIONS = (
    "last",
    "first",
    "min",
    "max",
    "mean",
    "count",
    "slope_per_day",
    "change",
    "days_since",
)
PATIENT_ATTRIBUTES = ("age_years", "sex_male")
ENCOUNTER_ATTRIBUTES = ("priority", "class", "type")


class SpecError(ValueError):
    """A feature spec that cannot be used; the message names the file and the feature."""


@dataclass(frozen=True, slots=True)
class Window:
    """Half-open interval ``(index + start, index + end]`` for the data a feature may use."""

    start: timedelta
    end: timedelta


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    description: str
    source: str
    aggregation: str
    codes: tuple[str, ...] = ()
    unit: str | None = None
    molar_mass: float | None = None
    value_map: dict[str, float] = field(default_factory=dict)
    attribute: str | None = None
    window: Window | None = None
    plausible: tuple[float, float] | None = None
    required: bool = False
    display: str = ""
    relative_to: str = "index"  # or "anchor": the window hangs on the index event's anchor

    @property
    def label(self) -> str:
        return self.display or self.name.replace("_", " ")


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """Where training finds prediction moments: an anchor resource and offsets after it."""

    resource: str
    codes: tuple[str, ...]
    anchor: str
    offsets: tuple[timedelta, ...]


@dataclass(frozen=True, slots=True)
class LabelSpec:
    name: str
    description: str
    resource: str
    codes: tuple[str, ...]
    window: Window
    relative_to: str
    exclude_priority: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    title: str
    description: str
    features: tuple[FeatureSpec, ...]
    index: IndexSpec
    label: LabelSpec
    sha256: str

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureSpec:
        for feat in self.features:
            if feat.name == name:
                return feat
        raise KeyError(name)


_FEATURE_KEYS = {
    "name",
    "description",
    "display",
    "source",
    "aggregation",
    "codes",
    "unit",
    "molar_mass",
    "value_map",
    "attribute",
    "window",
    "plausible",
    "required",
    "relative_to",
}
_MODEL_KEYS = {"name", "title", "description"}
_INDEX_KEYS = {"resource", "codes", "anchor", "offsets"}
_LABEL_KEYS = {
    "name",
    "description",
    "resource",
    "codes",
    "window",
    "relative_to",
    "exclude_priority",
}
_TOP_KEYS = {"model", "index", "label", "features"}


def _no_unknown_keys(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(raw) - allowed
    if unknown:
        raise SpecError(f"{where}: unknown keys {sorted(unknown)}")


def _window(raw: Any, where: str) -> Window:
    if not (isinstance(raw, list) and len(raw) == 2 and all(isinstance(x, str) for x in raw)):
        raise SpecError(f"{where}: window must be two ISO 8601 durations, e.g. ['-PT6H', 'PT0S']")
    try:
        start, end = parse_duration(raw[0]), parse_duration(raw[1])
    except ValueError as exc:
        raise SpecError(f"{where}: {exc}") from exc
    if start >= end:
        raise SpecError(f"{where}: window start must be before its end")
    return Window(start, end)


def _codes(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) and "|" in c for c in raw):
        raise SpecError(f"{where}: codes must be a list of 'system|code' strings")
    return tuple(raw)


def _feature(raw: dict[str, Any], where: str) -> FeatureSpec:
    """Validate one ``[[features]]`` entry; checks run in a fixed order, the first failure wins."""
    _no_unknown_keys(raw, _FEATURE_KEYS, where)
    _require_text(raw, ("name", "description", "source", "aggregation"), where)
    name, source, agg = raw["name"], raw["source"], raw["aggregation"]
    where = f"{where} ({name})"
    _check_source_and_aggregation(source, agg, where)
    codes = _codes(raw.get("codes", []), where) if "codes" in raw else ()
    window = _window(raw["window"], where) if "window" in raw else None
    attribute = raw.get("attribute")
    value_map = _value_map(raw.get("value_map", {}), where)
    _check_inputs(source, attribute, window, codes, where)
    _check_unit(raw, source, agg, value_map, where)
    _check_encounter_attribute(source, attribute, value_map, where)
    _check_event_aggregation(source, attribute, agg, where)
    plausible = _plausible(raw.get("plausible"), where)
    required = _required_flag(raw.get("required", False), where)
    molar_mass = _molar_mass(raw.get("molar_mass"), where)
    relative_to = raw.get("relative_to", "index")
    if relative_to not in ("index", "anchor") or (relative_to == "anchor" and window is None):
        raise SpecError(f"{where}: relative_to must be 'index' or 'anchor' (with a window)")
    return FeatureSpec(
        name=name,
        description=raw["description"],
        display=str(raw.get("display", "")),
        source=source,
        aggregation=agg,
        codes=codes,
        unit=raw.get("unit"),
        molar_mass=molar_mass,
        value_map={k: float(v) for k, v in value_map.items()},
        attribute=attribute,
        window=window,
        plausible=plausible,
        required=required,
        relative_to=relative_to,
    )


def _require_text(raw: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise SpecError(f"{where}: '{key}' is required")


def _check_source_and_aggregation(source: str, agg: str, where: str) -> None:
    if source not in SOURCES:
        raise SpecError(f"{where}: source must be one of {SOURCES}")
    if agg not in AGGREGATIONS:
        raise SpecError(f"{where}: aggregation must be one of {AGGREGATIONS}")


def _value_map(raw: Any, where: str) -> dict[str, int | float]:
    if not isinstance(raw, dict) or not all(
        isinstance(v, int | float) and "|" in k for k, v in raw.items()
    ):
        raise SpecError(f"{where}: value_map maps 'system|code' to a number")
    return raw


def _check_inputs(
    source: str, attribute: Any, window: Window | None, codes: tuple[str, ...], where: str
) -> None:
    """What each source reads: a patient attribute, or coded data inside a window."""
    if source == "patient":
        if attribute not in PATIENT_ATTRIBUTES:
            raise SpecError(f"{where}: patient features need attribute in {PATIENT_ATTRIBUTES}")
        return
    if window is None:
        raise SpecError(f"{where}: {source} features need a window")
    if not codes and source != "encounter":
        raise SpecError(f"{where}: {source} features need codes")


def _check_unit(
    raw: dict[str, Any], source: str, agg: str, value_map: dict[str, Any], where: str
) -> None:
    """A numeric observation value is converted to one canonical unit (or coded to numbers)."""
    numeric = agg not in ("count", "days_since")
    if source == "observation" and numeric and not raw.get("unit") and not value_map:
        raise SpecError(f"{where}: a numeric observation feature needs a canonical 'unit'")


def _check_encounter_attribute(
    source: str, attribute: Any, value_map: dict[str, Any], where: str
) -> None:
    if source != "encounter" or attribute is None:
        return
    if attribute not in ENCOUNTER_ATTRIBUTES:
        raise SpecError(f"{where}: encounter attribute must be one of {ENCOUNTER_ATTRIBUTES}")
    if not value_map:
        raise SpecError(f"{where}: an encounter attribute needs a value_map")


def _check_event_aggregation(source: str, attribute: Any, agg: str, where: str) -> None:
    """Encounters and conditions without an attribute are events: they can only be counted or
    dated."""
    if source not in ("encounter", "condition") or attribute is not None:
        return
    if agg not in ("count", "days_since"):
        raise SpecError(f"{where}: {source} features aggregate with count or days_since")


def _plausible(raw: Any, where: str) -> tuple[float, float] | None:
    if raw is None:
        return None
    valid = isinstance(raw, list) and len(raw) == 2
    valid = valid and all(isinstance(x, int | float) and not isinstance(x, bool) for x in raw)
    if not (valid and raw[0] < raw[1]):
        raise SpecError(f"{where}: plausible must be [low, high]")
    return (float(raw[0]), float(raw[1]))


def _required_flag(raw: Any, where: str) -> bool:
    if not isinstance(raw, bool):
        raise SpecError(f"{where}: required must be true or false")
    return raw


def _molar_mass(raw: Any, where: str) -> float | None:
    if raw is None:
        return None
    if not (isinstance(raw, int | float) and raw > 0):
        raise SpecError(f"{where}: molar_mass must be a positive number in g/mol")
    return float(raw)


def _index(raw: Any, where: str) -> IndexSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: [index] table is required")
    _no_unknown_keys(raw, _INDEX_KEYS, f"{where} [index]")
    resource = raw.get("resource")
    if resource not in ("Encounter", "Condition"):
        raise SpecError(f"{where}: [index] resource must be Encounter or Condition")
    offsets = raw.get("offsets", ["PT0S"])
    try:
        parsed = tuple(parse_duration(o) for o in offsets)
    except (ValueError, TypeError, AttributeError) as exc:
        raise SpecError(f"{where}: [index] offsets: {exc}") from exc
    return IndexSpec(
        resource=resource,
        codes=_codes(raw.get("codes"), f"{where} [index]"),
        anchor=str(raw.get("anchor", "start")),
        offsets=parsed,
    )


def _label(raw: Any, where: str) -> LabelSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: [label] table is required")
    _no_unknown_keys(raw, _LABEL_KEYS, f"{where} [label]")
    relative_to = raw.get("relative_to", "anchor")
    if relative_to not in ("anchor", "index"):
        raise SpecError(f"{where}: [label] relative_to must be 'anchor' or 'index'")
    if raw.get("resource") != "Encounter":
        raise SpecError(f"{where}: [label] resource must be Encounter")
    return LabelSpec(
        name=str(raw.get("name", "label")),
        description=str(raw.get("description", "")),
        resource="Encounter",
        codes=_codes(raw.get("codes"), f"{where} [label]"),
        window=_window(raw.get("window"), f"{where} [label]"),
        relative_to=relative_to,
        exclude_priority=_codes(raw.get("exclude_priority", []), f"{where} [label]"),
    )


def spec_from_dict(doc: dict[str, Any], where: str = "feature spec") -> ModelSpec:
    model = doc.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise SpecError(f"{where}: [model] with a name is required")
    _no_unknown_keys(doc, _TOP_KEYS, where)
    _no_unknown_keys(model, _MODEL_KEYS, f"{where} [model]")
    raw_features = doc.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise SpecError(f"{where}: at least one [[features]] entry is required")
    features = tuple(_feature(f, f"{where} feature #{i + 1}") for i, f in enumerate(raw_features))
    names = [f.name for f in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"{where}: duplicate feature names {duplicates}")
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return ModelSpec(
        name=model["name"],
        title=str(model.get("title", model["name"])),
        description=str(model.get("description", "")),
        features=features,
        index=_index(doc.get("index"), where),
        label=_label(doc.get("label"), where),
        sha256=hashlib.sha256(canonical.encode()).hexdigest(),
    )


def load_spec(path: str | Path) -> ModelSpec:
    """Load and validate a features.toml; its hash covers content, not formatting or comments."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from exc
    return spec_from_dict(doc, str(path))
