"""Declarative feature specifications (``models/<model>/features.toml``).

One spec drives both the training table and the live feature vector, so a model can never be
served with features computed differently from the ones it learned on. The format is documented in
``docs/feature-spec.md``; everything here validates it strictly, because a typo in a spec must fail
loudly at load time, not produce a silently missing feature in a physician's card.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from fhir_mappers.spec_fields import (
    NO_DISPLAY_RULE,
    DisplayRule,
    no_unknown_keys,
    parse_codes,
    parse_encounter_elements,
    parse_molar_mass,
    parse_plausible,
    parse_required,
    parse_show,
    parse_window,
    require_text,
)
from fhir_mappers.spec_fields import SpecError as SpecError
from fhir_mappers.spec_fields import Window as Window
from fhir_mappers.timeutil import parse_duration
from fhir_mappers.valuesets.binding import bind_codes, content_hash, expand_value_map
from fhir_mappers.valuesets.registry import ValueSetError

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
    # Canonical url of the bundled value set the codes came from (None: codes listed only);
    # site terminology extends features by this url.
    value_set: str | None = None
    # Value sets named as value_map keys, by canonical url, with the number they map to.
    value_map_sets: dict[str, float] = field(default_factory=dict)
    # Encounter elements that carry the same coded answer (arrival mode on the Encounter, e.g.
    # "extension:<url>" or "hospitalization.admitSource"), read besides the observation.
    encounter_elements: tuple[str, ...] = ()
    relative_to: str = "index"  # or "anchor": the window hangs on the index event's anchor
    show: DisplayRule = NO_DISPLAY_RULE  # how a card writes the value (display only)

    @property
    def label(self) -> str:
        return self.display or self.name.replace("_", " ")

    def label_in(self, language: str) -> str:
        return self.show.label.get(language) or self.label


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """Where training finds prediction moments: an anchor resource and offsets after it."""

    resource: str
    codes: tuple[str, ...]
    anchor: str
    offsets: tuple[timedelta, ...]
    value_set: str | None = None


@dataclass(frozen=True, slots=True)
class LabelSpec:
    name: str
    description: str
    resource: str
    codes: tuple[str, ...]
    window: Window
    relative_to: str
    exclude_priority: tuple[str, ...] = ()
    value_set: str | None = None


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


_FEATURE_KEYS = set(
    [
        "name",
        "description",
        "display",
        "source",
        "aggregation",
        "codes",
        "value_set",
        "unit",
        "molar_mass",
        "value_map",
        "attribute",
        "window",
        "plausible",
        "required",
        "encounter_elements",
        "relative_to",
        "show",
    ]
)
_MODEL_KEYS = {"name", "title", "description"}
_INDEX_KEYS = {"resource", "codes", "value_set", "anchor", "offsets"}
_LABEL_KEYS = set(
    [
        "name",
        "description",
        "resource",
        "codes",
        "value_set",
        "window",
        "relative_to",
        "exclude_priority",
    ]
)
_TOP_KEYS = {"model", "index", "label", "features"}


def _bound(raw: dict[str, Any], where: str, *, required: bool) -> tuple[tuple[str, ...], Any]:
    """Listed ``codes`` plus the codes of the bound ``value_set``, and that set's canonical url."""
    listed: tuple[str, ...] = ()
    if "codes" in raw or (required and "value_set" not in raw):
        listed = parse_codes(raw.get("codes"), where)
    try:
        return bind_codes(listed, raw.get("value_set"))
    except ValueSetError as exc:
        raise SpecError(f"{where}: {exc}") from exc


def _feature(raw: dict[str, Any], where: str) -> FeatureSpec:
    """Validate one ``[[features]]`` entry; checks run in a fixed order, the first failure wins."""
    no_unknown_keys(raw, _FEATURE_KEYS, where)
    require_text(raw, ("name", "description", "source", "aggregation"), where)
    name, source, agg = raw["name"], raw["source"], raw["aggregation"]
    where = f"{where} ({name})"
    _check_source_and_aggregation(source, agg, where)
    codes, value_set = _bound(raw, where, required=False)
    window = parse_window(raw["window"], where) if "window" in raw else None
    attribute = raw.get("attribute")
    value_map, value_map_sets = _value_map(raw.get("value_map", {}), where)
    _check_inputs(source, attribute, window, codes, where)
    _check_unit(raw, source, agg, value_map, where)
    _check_encounter_attribute(source, attribute, value_map, where)
    _check_event_aggregation(source, attribute, agg, where)
    elements = parse_encounter_elements(raw.get("encounter_elements", []), source, value_map, where)
    plausible = parse_plausible(raw.get("plausible"), where)
    required = parse_required(raw.get("required", False), where)
    molar_mass = parse_molar_mass(raw.get("molar_mass"), where)
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
        value_map=value_map,
        attribute=attribute,
        window=window,
        plausible=plausible,
        required=required,
        value_set=value_set,
        value_map_sets=value_map_sets,
        encounter_elements=elements,
        relative_to=relative_to,
        show=parse_show(raw.get("show"), where),
    )


def _check_source_and_aggregation(source: str, agg: str, where: str) -> None:
    if source not in SOURCES:
        raise SpecError(f"{where}: source must be one of {SOURCES}")
    if agg not in AGGREGATIONS:
        raise SpecError(f"{where}: aggregation must be one of {AGGREGATIONS}")


def _value_map(raw: Any, where: str) -> tuple[dict[str, float], dict[str, float]]:
    """Coded answers to numbers; a key is one ``system|code`` or a value set (all its codes)."""
    if not isinstance(raw, dict) or not all(isinstance(v, int | float) for v in raw.values()):
        raise SpecError(f"{where}: value_map maps 'system|code' or a value set to a number")
    try:
        return expand_value_map({str(k): float(v) for k, v in raw.items()})
    except ValueSetError as exc:
        raise SpecError(f"{where}: {exc}") from exc


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


def _index(raw: Any, where: str) -> IndexSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: [index] table is required")
    no_unknown_keys(raw, _INDEX_KEYS, f"{where} [index]")
    resource = raw.get("resource")
    if resource not in ("Encounter", "Condition"):
        raise SpecError(f"{where}: [index] resource must be Encounter or Condition")
    offsets = raw.get("offsets", ["PT0S"])
    try:
        parsed = tuple(parse_duration(o) for o in offsets)
    except (ValueError, TypeError, AttributeError) as exc:
        raise SpecError(f"{where}: [index] offsets: {exc}") from exc
    codes, value_set = _bound(raw, f"{where} [index]", required=True)
    return IndexSpec(
        resource=resource,
        codes=codes,
        anchor=str(raw.get("anchor", "start")),
        offsets=parsed,
        value_set=value_set,
    )


def _label(raw: Any, where: str) -> LabelSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: [label] table is required")
    no_unknown_keys(raw, _LABEL_KEYS, f"{where} [label]")
    relative_to = raw.get("relative_to", "anchor")
    if relative_to not in ("anchor", "index"):
        raise SpecError(f"{where}: [label] relative_to must be 'anchor' or 'index'")
    if raw.get("resource") != "Encounter":
        raise SpecError(f"{where}: [label] resource must be Encounter")
    codes, value_set = _bound(raw, f"{where} [label]", required=True)
    return LabelSpec(
        name=str(raw.get("name", "label")),
        description=str(raw.get("description", "")),
        resource="Encounter",
        codes=codes,
        window=parse_window(raw.get("window"), f"{where} [label]"),
        relative_to=relative_to,
        exclude_priority=parse_codes(raw.get("exclude_priority", []), f"{where} [label]"),
        value_set=value_set,
    )


def spec_from_dict(doc: dict[str, Any], where: str = "feature spec") -> ModelSpec:
    model = doc.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise SpecError(f"{where}: [model] with a name is required")
    no_unknown_keys(doc, _TOP_KEYS, where)
    no_unknown_keys(model, _MODEL_KEYS, f"{where} [model]")
    raw_features = doc.get("features")
    if not isinstance(raw_features, list) or not raw_features:
        raise SpecError(f"{where}: at least one [[features]] entry is required")
    features = tuple(_feature(f, f"{where} feature #{i + 1}") for i, f in enumerate(raw_features))
    names = [f.name for f in features]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"{where}: duplicate feature names {duplicates}")
    index, label = _index(doc.get("index"), where), _label(doc.get("label"), where)
    return ModelSpec(
        name=model["name"],
        title=str(model.get("title", model["name"])),
        description=str(model.get("description", "")),
        features=features,
        index=index,
        label=label,
        sha256=content_hash(_without_display(doc), _bound_urls(features, index, label)),
    )


def _without_display(doc: dict[str, Any]) -> dict[str, Any]:
    """The spec as the model sees it: ``show`` tables only change how a card words a value, so
    translating or rounding differently needs no retraining (the manifest check ignores them)."""
    features = [
        {k: v for k, v in f.items() if k != "show"} if isinstance(f, dict) else f
        for f in doc.get("features", [])
    ]
    return {**doc, "features": features}


def _bound_urls(features: tuple[FeatureSpec, ...], index: IndexSpec, label: LabelSpec) -> set[str]:
    urls = {u for f in features for u in (f.value_set, *f.value_map_sets) if u is not None}
    return urls | {u for u in (index.value_set, label.value_set) if u is not None}


def load_spec(path: str | Path) -> ModelSpec:
    """Load and validate a features.toml; its hash covers content, not formatting or comments."""
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from exc
    return spec_from_dict(doc, str(path))
