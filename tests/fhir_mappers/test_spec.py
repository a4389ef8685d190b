"""Feature spec validation (``spec_from_dict`` / ``load_spec``) and its content hash."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path

import pytest

from fhir_mappers import SpecError, load_spec, spec_from_dict
from fhir_mappers.spec import AGGREGATIONS
from fhir_mappers.timeutil import format_duration, parse_duration

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def test_real_specs_load(ed_spec, mi_spec):
    assert ed_spec.name == "ed-admission"
    assert mi_spec.name == "post-mi-unplanned-visit"
    assert ed_spec.feature_names[:2] == ["age", "sex_male"]
    assert len(set(ed_spec.feature_names)) == len(ed_spec.feature_names)
    assert {f.name for f in ed_spec.features if f.required} == {
        "age",
        "heart_rate",
        "systolic_bp",
    }
    assert {f.name for f in mi_spec.features if f.required} == {
        "age",
        "days_since_mi",
        "heart_rate_mean_3d",
        "systolic_bp_mean_3d",
    }
    glucose = ed_spec.feature("glucose")
    assert glucose.unit == "mmol/L"
    assert glucose.molar_mass == pytest.approx(180.156)
    assert glucose.window is not None
    assert glucose.window.start == timedelta(hours=-12)
    assert glucose.window.end == timedelta(0)
    assert ed_spec.feature("heart_rate").plausible == (20.0, 300.0)
    assert ed_spec.feature("age").label == "Age"
    with pytest.raises(KeyError):
        ed_spec.feature("no_such_feature")


def test_real_spec_index_and_label(ed_spec, mi_spec):
    assert ed_spec.index.resource == "Encounter"
    assert ed_spec.index.offsets == (timedelta(hours=1),)
    assert ed_spec.label.name == "admitted_24h"
    assert ed_spec.label.relative_to == "anchor"
    assert mi_spec.index.resource == "Condition"
    assert mi_spec.index.offsets == tuple(timedelta(days=d) for d in range(14, 85, 7))
    assert mi_spec.label.relative_to == "index"
    assert mi_spec.label.window.end == timedelta(days=14)
    assert mi_spec.label.exclude_priority == (
        "http://terminology.hl7.org/CodeSystem/v3-ActPriority|EL",
    )


def test_real_specs_use_only_known_aggregations(ed_spec, mi_spec):
    used = {f.aggregation for f in (*ed_spec.features, *mi_spec.features)}
    assert used <= set(AGGREGATIONS)
    assert len(used) >= 8  # all but 'first'; test_facts_extract covers every one


def test_label_falls_back_to_name(make_spec, fhir):
    spec = make_spec(fhir.obs_feature("heart_rate_last"))
    assert spec.feature("heart_rate_last").label == "heart rate last"


# --- sha256 ---------------------------------------------------------------------------------


def test_spec_sha256_is_stable_for_the_same_content(tmp_path, ed_spec):
    text = (MODELS_DIR / "ed-admission" / "features.toml").read_text(encoding="utf-8")
    again = load_spec(MODELS_DIR / "ed-admission" / "features.toml")
    assert again.sha256 == ed_spec.sha256
    assert len(ed_spec.sha256) == 64
    int(ed_spec.sha256, 16)
    # comments and blank lines are formatting, not content
    reformatted = tmp_path / "features.toml"
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#") and ln.strip()]
    reformatted.write_text("# a new comment\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert load_spec(reformatted).sha256 == ed_spec.sha256


def test_spec_sha256_ignores_key_order_but_not_content(spec_doc, fhir):
    doc = spec_doc(fhir.obs_feature("hr"))
    reordered = {k: doc[k] for k in reversed(list(doc))}
    reordered["features"] = [dict(reversed(list(doc["features"][0].items())))]
    assert spec_from_dict(doc).sha256 == spec_from_dict(reordered).sha256
    changed = copy.deepcopy(doc)
    changed["features"][0]["window"] = ["-PT7H", "PT0S"]
    assert spec_from_dict(changed).sha256 != spec_from_dict(doc).sha256
    described = copy.deepcopy(doc)
    described["features"][0]["description"] = "another text"
    assert spec_from_dict(described).sha256 != spec_from_dict(doc).sha256


def test_the_two_real_specs_hash_differently(ed_spec, mi_spec):
    assert ed_spec.sha256 != mi_spec.sha256


# --- rejections -----------------------------------------------------------------------------


def _feature_with(fhir, **changes):
    feat = fhir.obs_feature("f")
    for key, value in changes.items():
        if value is _DROP:
            feat.pop(key, None)
        else:
            feat[key] = value
    return feat


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"units": "/min"}, "unknown keys ['units']"),
        ({"windw": ["-PT6H", "PT0S"]}, "unknown keys"),
        ({"name": _DROP}, "'name' is required"),
        ({"name": ""}, "'name' is required"),
        ({"description": _DROP}, "'description' is required"),
        ({"aggregation": "median"}, "aggregation must be one of"),
        ({"aggregation": _DROP}, "'aggregation' is required"),
        ({"source": "medication"}, "source must be one of"),
        # windows
        ({"window": _DROP}, "need a window"),
        ({"window": "-PT6H"}, "window must be two ISO 8601 durations"),
        ({"window": ["-PT6H"]}, "window must be two ISO 8601 durations"),
        ({"window": ["-PT6H", "PT0S", "PT1H"]}, "window must be two ISO 8601 durations"),
        ({"window": [-6, 0]}, "window must be two ISO 8601 durations"),
        ({"window": ["-6h", "PT0S"]}, "not an ISO 8601 duration"),
        ({"window": ["-P1M", "PT0S"]}, "not an ISO 8601 duration"),  # months are ambiguous
        ({"window": ["-P1Y", "PT0S"]}, "not an ISO 8601 duration"),
        ({"window": ["PT0S", "-PT6H"]}, "start must be before its end"),
        ({"window": ["PT0S", "PT0S"]}, "start must be before its end"),
        # codes
        ({"codes": _DROP}, "observation features need codes"),
        ({"codes": []}, "observation features need codes"),
        ({"codes": ["8867-4"]}, "'system|code'"),
        ({"codes": "http://loinc.org|8867-4"}, "'system|code'"),
        ({"codes": [8867]}, "'system|code'"),
        # canonical unit
        ({"unit": _DROP}, "needs a canonical 'unit'"),
        ({"unit": ""}, "needs a canonical 'unit'"),
        ({"unit": _DROP, "aggregation": "mean"}, "needs a canonical 'unit'"),
        ({"unit": _DROP, "aggregation": "slope_per_day"}, "needs a canonical 'unit'"),
        # value map, plausible range, molar mass
        ({"value_map": {"ambulance": 1}}, "unknown value set 'ambulance'"),
        ({"value_map": {"s|ambulance": "yes"}}, "or a value set to a number"),
        ({"value_map": ["s|a"]}, "value_map maps"),
        ({"plausible": [300, 20]}, "plausible must be [low, high]"),
        ({"plausible": [20, 20]}, "plausible must be [low, high]"),
        ({"plausible": [20]}, "plausible must be [low, high]"),
        ({"plausible": "20-300"}, "plausible must be [low, high]"),
        ({"molar_mass": 0}, "molar_mass must be a positive number"),
        ({"molar_mass": -180.156}, "molar_mass must be a positive number"),
        ({"molar_mass": "180.156"}, "molar_mass must be a positive number"),
        # display rules
        ({"show": "male"}, "show is a table"),
        ({"show": {"colour": "red"}}, "show: unknown keys ['colour']"),
        ({"show": {"label": {"de": "Puls"}}}, "show.label: a text per language"),
        ({"show": {"label": {"en": ""}}}, "show.label: a text per language"),
        ({"show": {"words": {"male": {"en": "male"}}}}, "show.words key 'male' is not a number"),
        ({"show": {"words": {"1": "male"}}}, "show.words.1: a text per language"),
        ({"show": {"decimals": 5}}, "show.decimals must be 0 to 3"),
        ({"show": {"time": "no"}}, "show.time must be true or false"),
        ({"show": {"unit": ""}}, "show.unit is a UCUM unit"),
    ],
)
def test_bad_feature_is_rejected(spec_doc, fhir, changes, message):
    doc = spec_doc(_feature_with(fhir, **changes))
    with pytest.raises(SpecError) as err:
        spec_from_dict(doc, "models/x/features.toml")
    assert message in str(err.value)
    # the message names the file and the feature
    assert "models/x/features.toml" in str(err.value)
    assert "feature #1" in str(err.value)


@pytest.mark.parametrize(
    "plausible",
    [["low", "high"], [1, "x"], [None, 5], [True, 5]],
)
def test_non_numeric_plausible_range_is_a_spec_error(spec_doc, fhir, plausible):
    with pytest.raises(SpecError, match="plausible"):
        spec_from_dict(spec_doc(_feature_with(fhir, plausible=plausible)))


@pytest.mark.parametrize("required", ["false", "no", 1, 0])
def test_required_must_be_a_boolean(spec_doc, fhir, required):
    with pytest.raises(SpecError, match="required"):
        spec_from_dict(spec_doc(_feature_with(fhir, required=required)))


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        (
            {"name": "a", "description": "d", "source": "patient", "aggregation": "last"},
            "patient features need attribute",
        ),
        (
            {
                "name": "a",
                "description": "d",
                "source": "patient",
                "attribute": "weight",
                "aggregation": "last",
            },
            "patient features need attribute",
        ),
        (
            {
                "name": "a",
                "description": "d",
                "source": "encounter",
                "codes": ["s|EMER"],
                "window": ["-P1D", "PT0S"],
                "aggregation": "mean",
            },
            "aggregate with count or days_since",
        ),
        (
            {
                "name": "a",
                "description": "d",
                "source": "condition",
                "codes": ["s|1"],
                "window": ["-P1D", "PT0S"],
                "aggregation": "last",
            },
            "aggregate with count or days_since",
        ),
        (
            {
                "name": "a",
                "description": "d",
                "source": "condition",
                "window": ["-P1D", "PT0S"],
                "aggregation": "count",
            },
            "condition features need codes",
        ),
        (
            {
                "name": "a",
                "description": "d",
                "source": "encounter",
                "codes": ["s|EMER"],
                "attribute": "serviceType",
                "value_map": {"s|x": 1},
                "window": ["-P1D", "PT0S"],
                "aggregation": "last",
            },
            "encounter attribute must be one of",
        ),
        (
            {
                "name": "a",
                "description": "d",
                "source": "encounter",
                "codes": ["s|EMER"],
                "attribute": "priority",
                "window": ["-P1D", "PT0S"],
                "aggregation": "last",
            },
            "an encounter attribute needs a value_map",
        ),
    ],
)
def test_bad_source_combinations_are_rejected(spec_doc, feature, message):
    with pytest.raises(SpecError, match=message):
        spec_from_dict(spec_doc(feature))


@pytest.mark.parametrize(
    "feature",
    [
        # counting or days-since needs no unit
        {
            "name": "n",
            "description": "d",
            "source": "observation",
            "codes": ["http://loinc.org|8867-4"],
            "window": ["-P7D", "PT0S"],
            "aggregation": "count",
        },
        # a coded observation needs a value_map instead of a unit
        {
            "name": "n",
            "description": "d",
            "source": "observation",
            "codes": ["http://loinc.org|11459-5"],
            "value_map": {"s|ambulance": 1, "s|self": 0},
            "window": ["-P1D", "PT0S"],
            "aggregation": "last",
        },
        # encounters counted without codes (any class)
        {
            "name": "n",
            "description": "d",
            "source": "encounter",
            "window": ["-P365D", "PT0S"],
            "aggregation": "count",
        },
    ],
)
def test_valid_variants_are_accepted(spec_doc, feature):
    spec = spec_from_dict(spec_doc(feature))
    assert spec.feature_names == ["n"]


def test_duplicate_feature_names_are_rejected(spec_doc, fhir):
    doc = spec_doc(fhir.obs_feature("hr"), fhir.obs_feature("rr"), fhir.obs_feature("hr"))
    with pytest.raises(SpecError, match=r"duplicate feature names \['hr'\]"):
        spec_from_dict(doc)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("model"), r"\[model\] with a name is required"),
        (lambda d: d["model"].pop("name"), r"\[model\] with a name is required"),
        (lambda d: d.update(features=[]), "at least one"),
        (lambda d: d.pop("features"), "at least one"),
        (lambda d: d.update(features={"name": "x"}), "at least one"),
        (lambda d: d.pop("index"), r"\[index\] table is required"),
        (lambda d: d["index"].update(resource="Observation"), "resource must be Encounter or"),
        (lambda d: d["index"].update(offsets=["P1M"]), "offsets"),
        (lambda d: d["index"].update(offsets=[1]), "offsets"),
        (lambda d: d["index"].update(codes=["EMER"]), "'system|code'"),
        (lambda d: d.pop("label"), r"\[label\] table is required"),
        (lambda d: d["label"].update(resource="Condition"), "resource must be Encounter"),
        (lambda d: d["label"].update(relative_to="discharge"), "relative_to"),
        (lambda d: d["label"].update(window=["P1D", "PT0S"]), "start must be before"),
        (lambda d: d["label"].pop("window"), "window must be two"),
        (lambda d: d["label"].update(exclude_priority=["EL"]), "'system|code'"),
        # typos outside [[features]] must fail loudly as well
        (lambda d: d["label"].update(exclude_priorty=["s|EL"]), "unknown keys"),
        (lambda d: d["index"].update(offset=["P14D"]), "unknown keys"),
        (lambda d: d["model"].update(titel="x"), "unknown keys"),
        (lambda d: d.update(feature=[{"name": "x"}]), "unknown keys"),
    ],
)
def test_bad_model_index_or_label_is_rejected(spec_doc, fhir, mutate, message):
    doc = spec_doc(fhir.obs_feature("hr"))
    mutate(doc)
    with pytest.raises(SpecError, match=message):
        spec_from_dict(doc)


def test_load_spec_reports_the_path(tmp_path):
    broken = tmp_path / "features.toml"
    broken.write_text('[model]\nname = "x"\n[[features]\n', encoding="utf-8")
    with pytest.raises(SpecError, match=r"features\.toml"):
        load_spec(broken)
    with pytest.raises(SpecError, match=r"missing\.toml"):
        load_spec(tmp_path / "missing.toml")


def test_load_spec_rejects_a_typo_in_a_feature(tmp_path):
    text = (MODELS_DIR / "ed-admission" / "features.toml").read_text(encoding="utf-8")
    path = tmp_path / "features.toml"
    path.write_text(text.replace('aggregation = "last"', 'aggregation = "lats"', 1), "utf-8")
    with pytest.raises(SpecError, match=r"\(age\): aggregation must be one of"):
        load_spec(path)


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT0S", timedelta(0)),
        ("-PT6H", timedelta(hours=-6)),
        ("P365D", timedelta(days=365)),
        ("-P1W", timedelta(weeks=-1)),
        ("P1DT12H", timedelta(days=1, hours=12)),
        ("PT1H30M", timedelta(hours=1, minutes=30)),
        ("PT0.5S", timedelta(seconds=0.5)),
        (" P2D ", timedelta(days=2)),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "P", "PT", "-P", "6H", "P1M", "P1Y", "PT-1H", "1 day"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_duration(text)


@pytest.mark.parametrize(
    "delta",
    [
        timedelta(0),
        timedelta(hours=-6),
        timedelta(days=365),
        timedelta(days=1, hours=2, minutes=3, seconds=4),
        timedelta(days=-14),
    ],
)
def test_format_duration_round_trips(delta):
    assert parse_duration(format_duration(delta)) == delta
