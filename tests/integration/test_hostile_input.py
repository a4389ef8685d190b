"""Hostile input, end to end against a real server on SQLite and PostgreSQL.

Every case gets a clear 4xx, or a 200 card in which the damaged input is missing: never a 500,
never a risk computed from a wrong number (the audit row's features show the damaged input as
null), and no error body that echoes the patient's id, name, identifier or birth date.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from cds_service.cds_hooks.examples import FAMILY, MRN, ed_case, ed_prefetch, hook_body
from tests.utils.service import FHIR_BASE, NOW, Service, running_service

ED = "ed-admission-risk"
PID = "hx-pid-7f3k"
BORN = "1941-04-01"  # ed_case(sick=True)
SECRETS = (PID, FAMILY, "Testa", MRN, BORN)
MAX_BODY = 256 * 1024
MAX_RESOURCES = 40
REQUIRED = {"age", "heart_rate", "systolic_bp"}  # models/ed-admission/features.toml
# Without a usable triage vital the arrival model answers (hooks/ed-admission-risk.toml).
VITALS = {"heart_rate", "systolic_bp"}
OBSERVATION_FEATURES = (
    "heart_rate", "resp_rate", "systolic_bp", "diastolic_bp", "temperature", "spo2", "crp",
    "lactate", "leukocytes", "glucose",
)  # fmt: skip
UCUM = "http://unitsofmeasure.org"
REF = f"Patient/{PID}"
LONG_UNIT = "(" * 1998 + "/min" + ")" * 1998  # valid UCUM; slow to parse, so refused by length


@pytest.fixture(scope="module")
def hostile(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    yield from running_service(
        backend,
        tmp_path_factory.mktemp(f"hostile-{backend}"),
        max_body_bytes=MAX_BODY,
        fhir_max_resources=MAX_RESOURCES,
        fhir_retries=0,
    )


@pytest.fixture()
def svc(hostile: Service) -> Iterator[Service]:
    hostile.fhir.clear()
    hostile.fhir.reset()
    yield hostile


# --- helpers ----------------------------------------------------------------------------------


def prefetch() -> dict[str, Any]:
    return ed_prefetch(ed_case(NOW, pid=PID, sick=True))


def body(pf: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    out = hook_body(
        "encounter-start", PID, prefetch() if pf is None else pf, encounter_id=f"{PID}-ed"
    )
    out.update(changes)
    return out


def resource(pf: dict[str, Any], rid: str) -> dict[str, Any]:
    """The resource with this id (suffix after the patient id) in any prefetch slot."""
    if pf["patient"].get("id") == PID and rid == "patient":
        return pf["patient"]
    for key in ("observations", "encounters"):
        for entry in pf[key]["entry"]:
            if entry["resource"]["id"] == f"{PID}-{rid}":
                return entry["resource"]
    raise KeyError(rid)


def assert_clean_error(r: httpx.Response, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    message = r.json()["issue"][0]["diagnostics"]
    for word in words:
        assert word in message, (word, message)
    for secret in SECRETS:
        assert secret not in r.text, (secret, r.text)
    return str(message)


def audited(svc: Service, r: httpx.Response) -> tuple[dict[str, Any], dict[str, Any]]:
    """(card, audit row with features parsed) for a 200 answer."""
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    # The one place the patient's reference goes back to the EHR that sent it: the FHIR resource
    # a suggestion offers to create (a RiskAssessment needs its subject). Nowhere else.
    shown = json.loads(r.text)
    for suggestion in shown["cards"][0].get("suggestions", []):
        for action in suggestion["actions"]:
            assert action["resource"]["subject"] == {"reference": REF}
            del action["resource"]
    for secret in SECRETS:
        assert secret not in json.dumps(shown, ensure_ascii=False), secret
    row = svc.card_row(card["uuid"])
    row["features"] = json.loads(row["features"])
    row["missing_features"] = json.loads(row["missing_features"])
    return card, row


def assert_missing(svc: Service, r: httpx.Response, *names: str) -> dict[str, Any]:
    """The damaged inputs are missing in the audit row; a missing required one means no risk."""
    card, row = audited(svc, r)
    if VITALS.intersection(names) and "age" not in names:
        # the one-hour model never ran on the damaged vital: the arrival model answered
        assert row["model_name"] == "ed-admission-arrival" and row["card_kind"] == "risk"
        assert "triage vitals not yet recorded" in card["summary"]
        assert not VITALS.intersection(row["features"])
        return row
    for name in names:
        assert row["features"][name] is None, (name, row["features"][name])
        assert name in row["missing_features"]
    if REQUIRED.intersection(names):
        assert row["card_kind"] == "no-risk" and row["risk"] is None
        assert "not computed" in card["summary"]
    else:
        assert row["card_kind"] == "risk" and 0 <= row["risk"] <= 1
    untouched = {"heart_rate": 128, "systolic_bp": 88, "age": 84}
    for name, value in untouched.items():
        if name not in names:
            assert row["features"][name] == value, (name, row["features"])
    return row


# --- request body size and JSON depth ---------------------------------------------------------


def test_declared_body_over_the_limit_is_413(svc: Service) -> None:
    r = svc.client.post(f"/cds-services/{ED}", content=b"{" + b" " * MAX_BODY + b"}")
    assert_clean_error(r, 413, f"larger than {MAX_BODY} bytes")


def test_streamed_body_over_the_limit_is_413(svc: Service) -> None:
    def chunks() -> Iterator[bytes]:  # chunked transfer, no Content-Length
        yield b'{"hook": "encounter-start", "pad": "'
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    r = svc.client.post(f"/cds-services/{ED}", content=chunks())
    assert "content-length" not in r.request.headers
    assert_clean_error(r, 413, "larger than")


def test_feedback_body_over_the_limit_is_413(svc: Service) -> None:
    r = svc.client.post(f"/cds-services/{ED}/feedback", content=b"[" + b"0," * MAX_BODY + b"0]")
    assert_clean_error(r, 413, "larger than")


@pytest.mark.parametrize("depth", [1025, 5000])
def test_json_deeper_than_orjson_allows_is_400(svc: Service, depth: int) -> None:
    inner = b"[" * depth + b"]" * depth
    raw = b'{"hook": "encounter-start", "prefetch": {"patient": ' + inner + b"}}"
    r = svc.client.post(f"/cds-services/{ED}", content=raw)
    assert_clean_error(r, 400, "not valid JSON", "nested deeper than 1024 levels")


def test_lists_nested_1000_deep_in_a_prefetch_slot_are_412(svc: Service) -> None:
    doc = body()
    raw = json.dumps(doc).replace('"patient": {', '"patient": ' + "[" * 1000 + "{", 1)
    raw = raw.replace(', "observations"', "]" * 1000 + ', "observations"', 1)
    r = svc.client.post(f"/cds-services/{ED}", content=raw.encode())
    assert_clean_error(r, 412, "prefetch 'patient'", "not a FHIR resource or Bundle")


def test_lists_nested_1000_deep_inside_a_resource_are_ignored(svc: Service) -> None:
    pf = prefetch()
    resource(pf, "hr")["note"] = "NESTED"
    raw = json.dumps(body(pf)).replace('"NESTED"', "[" * 1000 + "]" * 1000, 1).encode()
    _card, row = audited(svc, svc.client.post(f"/cds-services/{ED}", content=raw))
    assert row["card_kind"] == "risk" and row["features"]["heart_rate"] == 128


# --- huge Bundles -----------------------------------------------------------------------------


def test_bundle_with_more_resources_than_allowed_is_413_naming_the_key(svc: Service) -> None:
    pf = prefetch()
    hr = resource(pf, "hr")
    extra = [dict(copy.deepcopy(hr), id=f"{PID}-hr-{i}") for i in range(MAX_RESOURCES)]
    pf["observations"]["entry"] += [{"resource": res} for res in extra]
    r = svc.call(ED, body(pf))
    assert_clean_error(r, 413, "prefetch 'observations'", f"more than {MAX_RESOURCES}")


def test_bundle_at_the_limit_is_accepted(svc: Service) -> None:
    pf = prefetch()
    entries = pf["observations"]["entry"]
    hr = resource(pf, "hr")
    entries += [
        {"resource": dict(copy.deepcopy(hr), id=f"{PID}-hr-{i}")}
        for i in range(MAX_RESOURCES - len(entries))
    ]
    _card, row = audited(svc, svc.call(ED, body(pf)))
    assert row["card_kind"] == "risk" and row["features"]["heart_rate"] == 128


# --- wrong types everywhere -------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _set(rid: str, *path: str, value: Any) -> Mutation:
    def apply(pf: dict[str, Any]) -> None:
        target = resource(pf, rid)
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _component_as_object(pf: dict[str, Any]) -> None:
    bp = resource(pf, "bp")
    bp["component"] = bp["component"][0]


WRONG_TYPES: list[tuple[str, Mutation, tuple[str, ...]]] = [
    ("number as string", _set("hr", "valueQuantity", "value", value="128"), ("heart_rate",)),
    ("quantity as list", _set("rr", "valueQuantity", value=[{"value": 28}]), ("resp_rate",)),
    ("code as list", _set("temp", "code", value=[{"coding": []}]), ("temperature",)),
    ("coding as object", _set("hr", "code", "coding", value={"code": "8867-4"}), ("heart_rate",)),
    ("subject as list", _set("spo2", "subject", value=[{"reference": REF}]), ("spo2",)),
    ("null time", _set("crp", "effectiveDateTime", value=None), ("crp",)),
    ("null status", _set("lact", "status", value=None), ("lactate",)),
    ("null quantity", _set("wbc", "valueQuantity", value=None), ("leukocytes",)),
    ("null value", _set("glu", "valueQuantity", "value", value=None), ("glucose",)),
    ("bool value", _set("rr", "valueQuantity", "value", value=True), ("resp_rate",)),
    ("birthDate as number", _set("patient", "birthDate", value=19410401), ("age",)),
    ("gender as list", _set("patient", "gender", value=["male"]), ("sex_male",)),
    ("priority as string", _set("ed", "priority", value="EM"), ("triage_urgency",)),
    ("component as object", _component_as_object, ("systolic_bp", "diastolic_bp")),
    ("time as number", _set("hr", "effectiveDateTime", value=1773480000), ("heart_rate",)),
]  # fmt: skip


@pytest.mark.parametrize(
    "period", [[{"start": "2026-03-14"}], {"start": 1773480000}, {"end": "2026-03-14"}, "x"]
)
def test_an_encounter_in_context_without_a_start_is_412(svc: Service, period: Any) -> None:
    """encounter-start anchors the moment of prediction on the encounter's start."""
    pf = prefetch()
    _set("ed", "period", value=period)(pf)
    assert_clean_error(svc.call(ED, body(pf)), 412, "has no start (period.start)")


@pytest.mark.parametrize(
    ("mutate", "missing"), [c[1:] for c in WRONG_TYPES], ids=[c[0] for c in WRONG_TYPES]
)
def test_wrong_types_make_the_input_missing(
    svc: Service, mutate: Mutation, missing: tuple[str, ...]
) -> None:
    pf = prefetch()
    mutate(pf)
    assert_missing(svc, svc.call(ED, body(pf)), *missing)


# --- absurd values and unknown units ----------------------------------------------------------


def _quantity(rid: str, value: Any, code: str, system: str | None = UCUM) -> Mutation:
    quantity: dict[str, Any] = {"value": value, "unit": code, "code": code}
    if system is not None:
        quantity["system"] = system
    return _set(rid, "valueQuantity", value=quantity)


def _at(rid: str, when: str) -> Mutation:
    return _set(rid, "effectiveDateTime", value=when)


ABSURD: list[tuple[str, Mutation, tuple[str, ...]]] = [
    ("heart rate 1e308", _set("hr", "valueQuantity", "value", value=1e308), ("heart_rate",)),
    ("heart rate negative", _set("hr", "valueQuantity", "value", value=-80), ("heart_rate",)),
    ("heart rate zero", _set("hr", "valueQuantity", "value", value=0), ("heart_rate",)),
    ("temperature 1e308 degF", _quantity("temp", 1e308, "[degF]"), ("temperature",)),
    ("tiny resp rate", _set("rr", "valueQuantity", "value", value=1e-300), ("resp_rate",)),
    ("huge integer literal", _set("crp", "valueQuantity", "value", value=10**30), ("crp",)),
    ("NaN string", _set("hr", "valueQuantity", "value", value="NaN"), ("heart_rate",)),
    ("Infinity string", _set("lact", "valueQuantity", "value", value="Infinity"), ("lactate",)),
    ("-inf string", _set("glu", "valueQuantity", "value", value="-inf"), ("glucose",)),
    ("birthDate 9999", _set("patient", "birthDate", value="9999-12-31"), ("age",)),
    ("birthDate in the future", _set("patient", "birthDate", value="2030-01-01"), ("age",)),
    ("birthDate year 1", _set("patient", "birthDate", value="0001-01-01"), ("age",)),
    ("birthDate garbage", _set("patient", "birthDate", value="NaN-NaN-NaN"), ("age",)),
    ("time in year 9999", _at("hr", "9999-12-31T23:59:59Z"), ("heart_rate",)),
    ("time before year 1 UTC", _at("hr", "0001-01-01T00:00:00+14:00"), ("heart_rate",)),
    ("unknown UCUM unit", _quantity("hr", 128, "furlong/fortnight"), ("heart_rate",)),
    ("wrong dimension", _quantity("temp", 39.4, "kg"), ("temperature",)),
    ("local unit system", _quantity("glu", 180, "MGDL", "http://lab.example/units"), ("glucose",)),
    ("no unit at all", _set("crp", "valueQuantity", value={"value": 180}), ("crp",)),
    ("annotation only", _quantity("hr", 128, "{beats}"), ("heart_rate",)),
    ("4000-character unit", _quantity("hr", 128, LONG_UNIT), ("heart_rate",)),
    ("comparator garbage", _set("crp", "valueQuantity", "comparator", value="~"), ("crp",)),
]  # fmt: skip


@pytest.mark.parametrize(("mutate", "missing"), [c[1:] for c in ABSURD], ids=[c[0] for c in ABSURD])
def test_absurd_values_and_unknown_units_make_the_input_missing(
    svc: Service, mutate: Mutation, missing: tuple[str, ...]
) -> None:
    pf = prefetch()
    mutate(pf)
    assert_missing(svc, svc.call(ED, body(pf)), *missing)


def test_convertible_units_still_count(svc: Service) -> None:
    """The control for the cases above: a correct but foreign unit converts."""
    pf = prefetch()
    _quantity("temp", 102.92, "[degF]")(pf)
    _quantity("hr", 128, "bpm", None)(pf)
    _card, row = audited(svc, svc.call(ED, body(pf)))
    assert abs(row["features"]["temperature"] - 39.4) < 1e-6
    assert row["features"]["heart_rate"] == 128 and row["card_kind"] == "risk"


# --- deeply nested extensions -----------------------------------------------------------------


def nested_extension(levels: int) -> list[dict[str, Any]]:
    inner: list[dict[str, Any]] = [{"url": "https://ext.example/leaf", "valueString": "x"}]
    for i in range(levels):
        inner = [{"url": f"https://ext.example/{i}", "extension": inner}]
    return inner


@pytest.mark.parametrize("levels", [200, 450])
def test_deeply_nested_extensions_are_ignored(svc: Service, levels: int) -> None:
    pf = prefetch()
    for rid in ("patient", "hr", "ed"):
        resource(pf, rid)["extension"] = nested_extension(levels)
    assert_missing(svc, svc.call(ED, body(pf)))  # nothing missing; the risk is computed


def test_duplicate_resource_with_deep_extension_does_not_break_dedupe(svc: Service) -> None:
    """Two differing copies of one Observation: choosing between them serializes both."""
    pf = prefetch()
    twin = copy.deepcopy(resource(pf, "hr"))
    twin["extension"] = nested_extension(450)
    pf["observations"]["entry"].append({"resource": twin})
    _card, row = audited(svc, svc.call(ED, body(pf)))
    assert row["features"]["heart_rate"] == 128 and row["card_kind"] == "risk"
    (audit,) = svc.db.rows(
        "SELECT mapper_warnings FROM card_audit WHERE card_uuid = :u", u=row["card_uuid"]
    )
    assert json.loads(audit["mapper_warnings"])["duplicate_resource"] == 1


# --- non-object prefetch values and context of the wrong type ---------------------------------


@pytest.mark.parametrize("value", ["a string", 42, 1.5, True, [], [1, 2], [[[]]], {"no": "type"}])
def test_non_resource_prefetch_values_are_412_naming_the_key(svc: Service, value: Any) -> None:
    pf = prefetch()
    pf["encounters"] = value
    r = svc.call(ED, body(pf))
    assert_clean_error(r, 412, "prefetch 'encounters'")


@pytest.mark.parametrize("value", ["a string", 42, [], [{"resourceType": "Patient"}], True])
def test_prefetch_that_is_not_an_object_is_400(svc: Service, value: Any) -> None:
    r = svc.call(ED, body(prefetch=value))
    assert_clean_error(r, 400, "prefetch")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("patientId", 42),
        ("patientId", [PID]),
        ("patientId", {"id": PID}),
        ("patientId", True),
        ("patientId", None),
        ("userId", 7),
        ("userId", ["Practitioner/x"]),
        ("encounterId", {"reference": f"Encounter/{PID}-ed"}),
        ("encounterId", 1.5),
    ],
)
def test_context_fields_of_the_wrong_type_are_400(svc: Service, field: str, value: Any) -> None:
    doc = body()
    doc["context"][field] = value
    assert_clean_error(svc.call(ED, doc), 400, f"context.{field}")


@pytest.mark.parametrize("context", [[PID], "patient", 42, None])
def test_context_that_is_not_an_object_is_400(svc: Service, context: Any) -> None:
    assert_clean_error(svc.call(ED, body(context=context)), 400, "context")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hookInstance", 42),
        ("hookInstance", ""),
        ("hookInstance", "x" * 129),
        ("hook", ["encounter-start"]),
        ("fhirServer", 42),
        ("fhirServer", "ftp://fhir.example.org"),
        ("fhirServer", "http://[::1"),
        ("fhirServer", "https://fhir.example.org:99999/r4"),
        ("fhirServer", "https://fhir.example.org/r4\x00"),
        ("fhirServer", "https://fhir.example.org/r4?_format=json"),
        ("fhirServer", "https://fhir.example.org/r4#x"),
        ("fhirServer", "https://user:pw@fhir.example.org/r4"),
        ("extension", ["x"]),
    ],
)
def test_top_level_fields_of_the_wrong_type_are_400(svc: Service, field: str, value: Any) -> None:
    assert_clean_error(svc.call(ED, body(**{field: value})), 400, field)


# --- unicode and control characters in ids ----------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f"{PID}\x00",
        f"{PID}\n",
        f"{PID}\u202e",
        f"{PID}\u2028",
        "pät-ïd",
        "../" + PID,
        f"Patient/{PID}",
        PID + "x" * 64,
        "🩺",
    ],
)
def test_unicode_and_control_characters_in_context_ids_are_400(svc: Service, value: str) -> None:
    doc = body()
    doc["context"]["patientId"] = value
    assert_clean_error(svc.call(ED, doc), 400, "context.patientId must be a FHIR id")
    doc = body()
    doc["context"]["userId"] = "Practitioner/" + value.replace(PID, "dr")
    assert_clean_error(svc.call(ED, doc), 400, "context.userId")


@pytest.mark.parametrize("value", ["\x00", "hook\x00instance", "line\nbreak", "\x7f"])
def test_control_characters_in_hook_instance_are_400(svc: Service, value: str) -> None:
    assert_clean_error(svc.call(ED, body(hookInstance=value)), 400, "hookInstance")


def test_unicode_hook_instance_is_stored(svc: Service) -> None:
    instance = "🩺-ïnstance-\u2028-" + "é" * 100
    _card, row = audited(svc, svc.call(ED, body(hookInstance=instance)))
    assert row["hook_instance"] == instance


def test_unicode_and_control_characters_in_resource_ids(svc: Service) -> None:
    pf = prefetch()
    resource(pf, "rr")["id"] = "rr-\x00-\u202e-🩺"
    resource(pf, "temp")["subject"] = {"reference": f"Patient/{PID}\x00"}  # someone else
    row = assert_missing(svc, svc.call(ED, body(pf)), "temperature")
    assert row["features"]["resp_rate"] == 28


def test_patient_resource_with_another_id_is_not_used(svc: Service) -> None:
    pf = prefetch()
    pf["patient"]["id"] = f"{PID}\u0000"
    assert_missing(svc, svc.call(ED, body(pf)), "age", "sex_male")


def test_unicode_service_id_is_404(svc: Service) -> None:
    r = svc.client.post("/cds-services/ed-admission-risk\u202e", json=body())
    assert_clean_error(r, 404, "unknown CDS service id")


# --- a hostile FHIR server behind the fallback ------------------------------------------------


GZIP = {"content-encoding": "gzip"}


def _bundle_linking(url: str) -> dict[str, Any]:
    return {"resourceType": "Bundle", "link": [{"relation": "next", "url": url}]}


def _fallback_body() -> dict[str, Any]:
    pf = prefetch()
    del pf["observations"]
    return hook_body(
        "encounter-start", PID, pf, encounter_id=f"{PID}-ed", fhir_server=FHIR_BASE, token="t-1"
    )


def _answer(status: int, **kw: Any) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(status, **kw)


def _nested(depth: int) -> Callable[[], httpx.Response]:
    return _answer(200, content=b"[" * depth + b"]" * depth)


HOSTILE_ANSWERS: list[tuple[str, Callable[[], httpx.Response], str]] = [
    ("html", _answer(200, content=b"<html>not json</html>"), "412"),
    ("2000 nested lists", _nested(2000), "412"),
    ("broken gzip", _answer(200, headers=GZIP, stream=httpx.ByteStream(b"\x1f\x8b junk")), "412"),
    ("bad next link", _answer(200, json=_bundle_linking("http://[::1")), "412"),
    ("foreign next link", _answer(200, json=_bundle_linking("https://evil.example/")), "412"),
    ("teapot", _answer(418, json={"resourceType": "OperationOutcome", "issue": [7]}), "412"),
    ("json list", _answer(200, json=[1, "two", None]), "missing"),
    ("1000 nested lists", _nested(1000), "missing"),
    ("bundle of junk", _answer(200, json={"resourceType": "Bundle", "entry": 5}), "missing"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "expected"), [c[1:] for c in HOSTILE_ANSWERS], ids=[c[0] for c in HOSTILE_ANSWERS]
)
def test_hostile_fhir_server_answers(
    svc: Service, answer: Callable[[], httpx.Response], expected: str
) -> None:
    """Unusable answers to a required search are 412; answers that parse but hold no resource
    mean no observations: the card says the inputs are missing."""
    svc.fhir.get(url__startswith=f"{FHIR_BASE}/Observation").mock(side_effect=lambda _: answer())
    r = svc.call(ED, _fallback_body())
    if expected == "412":
        assert_clean_error(r, 412, "prefetch 'observations' could not be fetched")
    else:
        assert_missing(svc, r, *OBSERVATION_FEATURES)


def test_fhir_server_flooding_resources_is_bounded(svc: Service) -> None:
    hr = resource(prefetch(), "hr")
    flood = [dict(copy.deepcopy(hr), id=f"{PID}-f{i}") for i in range(3 * MAX_RESOURCES)]
    page = {"resourceType": "Bundle", "entry": [{"resource": r} for r in flood]}
    route = svc.fhir.get(url__startswith=f"{FHIR_BASE}/Observation").mock(
        return_value=httpx.Response(200, json=page)
    )
    doc = _fallback_body()
    doc.update(hook="patient-view", context={"userId": doc["context"]["userId"], "patientId": PID})
    # patient-view: the one-hour model alone, so the row shows the flooded heart rate
    _card, row = audited(svc, svc.call(f"{ED}-patient-view", doc))
    assert route.call_count == 1
    assert row["features"]["heart_rate"] == 128


DEEP_SUGGESTION: dict[str, Any] = {"id": "s"}
for _ in range(300):
    DEEP_SUGGESTION = {"id": "s", "nested": [DEEP_SUGGESTION]}


# --- feedback -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "item",
    [
        {"card": "c\x00", "outcome": "accepted", "outcomeTimestamp": "2026-03-14T09:31:00Z"},
        {
            "card": "c-1",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-03-14T09:31:00Z",
            "overrideReason": {"reason": {"code": "x\x00"}, "userComment": "ok"},
        },
        {
            "card": "c-1",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-03-14T09:31:00Z",
            "overrideReason": {"userComment": "seen\x00"},
        },
        {"card": ["c-1"], "outcome": "accepted", "outcomeTimestamp": "2026-03-14T09:31:00Z"},
        {"card": "c-1", "outcome": "accepted", "outcomeTimestamp": "9999-99-99"},
        {"card": "c-1", "outcome": "accepted", "outcomeTimestamp": 1773480000},
        {"card": "c-1", "outcome": "accepted", "outcomeTimestamp": "2026-03-14T09:31:00"},
        {"card": "c-1", "outcome": None, "outcomeTimestamp": "2026-03-14T09:31:00Z"},
        {
            "card": "c-1",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-03-14T09:31:00Z",
            "overrideReason": {"reason": "disagree"},
        },
        {"card": "c-1", "outcome": "accepted", "outcomeTimestamp": "0001-01-01T00:00:00+14:00"},
        {"card": "c-1", "outcome": "accepted", "outcomeTimestamp": "9999-12-31T23:59:59-14:00"},
        {
            "card": "c-1",
            "outcome": "accepted",
            "outcomeTimestamp": "2026-03-14T09:31:00Z",
            "acceptedSuggestions": [DEEP_SUGGESTION],
        },
    ],
    ids=[
        "NUL in card",
        "NUL in reason code",
        "NUL in comment",
        "card as list",
        "impossible date",
        "timestamp as number",
        "naive timestamp",
        "null outcome",
        "reason as string",
        "before year 1 in UTC",
        "after year 9999 in UTC",
        "suggestion nested 300 deep",
    ],
)
def test_hostile_feedback_is_400_and_never_poisons_the_audit_spool(
    svc: Service, item: dict[str, Any]
) -> None:
    r = svc.client.post(f"/cds-services/{ED}/feedback", json={"feedback": [item]})
    assert_clean_error(r, 400, "feedback[0]")
    assert svc.client.get("/healthz").json()["spooled_audit_files"] == 0


def test_too_many_feedback_entries_is_413(svc: Service) -> None:
    item = {"card": "c-1", "outcome": "accepted", "outcomeTimestamp": "2026-03-14T09:31:00Z"}
    r = svc.client.post(f"/cds-services/{ED}/feedback", json={"feedback": [item] * 101})
    assert_clean_error(r, 413, "at most 100")
