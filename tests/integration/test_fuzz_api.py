"""Fuzz the HTTP API from its own OpenAPI description (schemathesis) against a real server.

Zero server errors is the only property checked: 4xx answers are fine, 5xx never. The service
call operation is also fuzzed with bodies steered past request validation (a valid hook and
context, random prefetch, fhirServer and hookInstance), so the prefetch, fallback, mapper, model
and audit paths see hostile input too. A second server has JWT verification on: without a valid
token every CDS Hooks route answers 401 (or a router 404), never 500, whatever the request and
whatever is sent as the bearer token. Bounded: fixed seed, derandomized, a few dozen examples per
operation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import respx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, mi_prefetch, post_mi_case
from cds_service.main import create_app
from cds_service.security.local_issuer import generate_key, public_jwks
from tests.utils.server import ServerThread
from tests.utils.service import NOW, make_settings, new_database

SEED = 20260314
PID = "fz-pat-1"
# service id -> (hook, context that passes validation)
SERVICES: dict[str, tuple[str, dict[str, str]]] = {
    "ed-admission-risk": (
        "encounter-start",
        {"userId": "Practitioner/fz-doc", "patientId": PID, "encounterId": "fz-enc-1"},
    ),
    "ed-admission-risk-patient-view": (
        "patient-view",
        {"userId": "Practitioner/fz-doc", "patientId": PID},
    ),
    "post-mi-unplanned-visit-risk": (
        "patient-view",
        {"userId": "PractitionerRole/fz-role", "patientId": PID},
    ),
}
CDS_PATHS = ("/cds-services", "/cds-services/{service_id}", "/cds-services/{service_id}/feedback")


def _config(*, coverage: bool = True) -> SchemathesisConfig:
    """Fixed seed; the coverage phase (boundary values per schema keyword) only where the body
    matters."""
    return SchemathesisConfig.from_dict(
        {"seed": SEED, "phases": {"coverage": {"enabled": coverage}}}
    )


def _fhir_router() -> respx.MockRouter:
    """Every outbound FHIR read gets a 404 OperationOutcome: the fallback path runs, offline."""
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=False)
    router.route().mock(
        return_value=httpx.Response(
            404,
            json={
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-found"}],
            },
        )
    )
    return router


def _start(tmp: Path, **overrides: Any) -> Iterator[str]:
    db = new_database("sqlite", tmp)
    settings_ = make_settings(db.url, tmp, fhir_retries=0, **overrides)
    router = _fhir_router()
    app = create_app(
        settings_, clock=lambda: NOW, transport=httpx.MockTransport(router.async_handler)
    )
    try:
        with ServerThread(app) as server:
            yield server.url
    finally:
        db.close()


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Auth disabled (development): requests reach validation, prefetch and the mappers; the
    dashboard has its development user, so its pages are fuzzed rather than 'not configured'."""
    yield from _start(tmp_path_factory.mktemp("fuzz-open"), dashboard_dev_user="fuzz-quality")


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Auth enabled with one trusted issuer (inline JWKS); the fuzzer holds no token."""
    tmp = tmp_path_factory.mktemp("fuzz-locked")
    callers = [
        {
            "iss": "https://ehr.fuzz.example",
            "jwks": public_jwks(generate_key("ES384", kid="fuzz-kid")),
            "fhir_servers": ["https://fhir.fuzz.example/r4"],
        }
    ]
    path = tmp / "trusted-callers.json"
    path.write_text(json.dumps(callers))
    yield from _start(tmp, auth_disabled=False, trusted_issuers=path)


@pytest.fixture(scope="module")
def open_api(open_server: str) -> Any:
    return schemathesis.openapi.from_url(f"{open_server}/openapi.json", config=_config())


@pytest.fixture(scope="module")
def locked_api(locked_server: str) -> Any:
    return schemathesis.openapi.from_url(
        f"{locked_server}/openapi.json", config=_config(coverage=False)
    )


open_schema = schemathesis.pytest.from_fixture("open_api")
locked_schema = schemathesis.pytest.from_fixture("locked_api")

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# 503 by design: the dashboard's OpenID Connect callback while no identity provider is configured.
NOT_CONFIGURED = {("GET", "/dashboard/callback")}


def _not_a_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code == 503 and (case.method.upper(), case.path) in NOT_CONFIGURED:
        return None
    return not_a_server_error(ctx, response, case)


@open_schema.parametrize()
@FUZZ
def test_no_operation_answers_a_server_error(case: Any) -> None:
    case.call_and_validate(checks=[_not_a_server_error])


# --- service calls steered past request validation -------------------------------------------

_FHIR_WORDS = [
    "Observation", "Encounter", "Condition", "Patient", "Bundle", "OperationOutcome", "final",
    "entered-in-error", "in-progress", "http://loinc.org", "8867-4", "8480-6", "85354-9",
    "http://unitsofmeasure.org", "mm[Hg]", "/min", "mg/dL", "{beats}", "kg", "[degF]",
    "2026-03-14T09:00:00Z", "9999-12-31", "-0001-01-01", "1e308", "NaN", f"Patient/{PID}",
    "http://terminology.hl7.org/CodeSystem/v3-ActCode", "EMER", "IMP", "22298006",
]  # fmt: skip
_FHIR_KEYS = [
    "resourceType", "id", "status", "code", "coding", "system", "value", "unit", "valueQuantity",
    "valueInteger", "component", "effectiveDateTime", "subject", "reference", "class", "period",
    "start", "birthDate", "gender", "entry", "resource", "link", "relation", "url", "extension",
]  # fmt: skip
_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(_FHIR_WORDS),
)
_JSONISH = st.recursive(
    _LEAF,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(_FHIR_KEYS), st.text(max_size=6)), kids),
    ),
    max_leaves=30,
)
_RESOURCE = st.fixed_dictionaries(
    {
        "resourceType": st.sampled_from(["Observation", "Encounter", "Condition", "Patient"]),
        "subject": st.one_of(st.just({"reference": f"Patient/{PID}"}), _JSONISH),
    },
    optional={
        "id": st.one_of(st.just(PID), st.text(max_size=8)),
        **{k: _JSONISH for k in _FHIR_KEYS if k not in ("resourceType", "subject", "id")},
    },
)
_SLOT = st.one_of(
    _JSONISH,
    _RESOURCE,
    st.builds(
        lambda rs: {"resourceType": "Bundle", "type": "searchset", "entry": rs},
        st.lists(st.one_of(st.builds(lambda r: {"resource": r}, _RESOURCE), _JSONISH), max_size=5),
    ),
)
_FHIR_SERVER = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "https://fhir.fuzz.example/r4",
            "http://[::1",
            "http://fhir.fuzz.example:99999/r4",
            "https://fhir.fuzz.example/r4\x00",
            "https://",
        ]
    ),
)
_HOOK_INSTANCE = st.one_of(st.just("fz-1"), st.sampled_from(["a" * 128, "fz-\x00", "fz-\u2028"]))


def _base_prefetch(service_id: str) -> dict[str, Any]:
    """A complete, valid prefetch for the service, for the fuzzer to damage."""
    if service_id.startswith("post-mi"):
        return mi_prefetch(post_mi_case(NOW, pid=PID))
    return ed_prefetch(ed_case(NOW, pid=PID))


def _damage(prefetch: dict[str, Any], data: Any) -> None:
    """Replace, drop or add slots; add hostile resources to Bundles; overwrite resource fields."""
    for _ in range(data.draw(st.integers(0, 4), label="damages")):
        key = data.draw(st.sampled_from([*sorted(prefetch), "extra"]), label="slot")
        action = data.draw(st.sampled_from(["replace", "drop", "insert", "poke", "poke"]))
        slot = prefetch.get(key)
        if action == "replace" or not isinstance(slot, dict):
            prefetch[key] = data.draw(_SLOT, label="new slot")
        elif action == "drop":
            del prefetch[key]
        elif isinstance(slot.get("entry"), list) and slot["entry"]:
            entries = slot["entry"]
            if action == "insert":
                entries.append({"resource": data.draw(_RESOURCE, label="resource")})
                continue
            entry = entries[data.draw(st.integers(0, len(entries) - 1), label="entry")]
            if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                field = data.draw(st.sampled_from(_FHIR_KEYS), label="field")
                entry["resource"][field] = data.draw(_JSONISH, label="value")
        else:
            slot[data.draw(st.sampled_from(_FHIR_KEYS), label="field")] = data.draw(_JSONISH)


@open_schema.include(path="/cds-services/{service_id}").parametrize()
@open_schema.given(data=st.data())
@settings(FUZZ, max_examples=60)
def test_service_calls_with_valid_context_and_hostile_prefetch(case: Any, data: Any) -> None:
    service_id = data.draw(st.sampled_from(sorted(SERVICES)), label="service")
    case.path_parameters = {"service_id": service_id}
    hook, context = SERVICES[service_id]
    prefetch = _base_prefetch(service_id)
    _damage(prefetch, data)
    generated = case.body if isinstance(case.body, dict) else {}
    case.body = {
        **{k: v for k, v in generated.items() if k not in ("fhirAuthorization", "fhirServer")},
        "hook": hook,
        "hookInstance": data.draw(_HOOK_INSTANCE, label="hookInstance"),
        "context": dict(context),
        "prefetch": prefetch,
    }
    server = data.draw(_FHIR_SERVER, label="fhirServer")
    if server is not None:
        case.body["fhirServer"] = server
    case.call_and_validate(checks=[not_a_server_error])


# --- JWT verification on: no token, no entry ---------------------------------------------------


ROUTER_ANSWERS = {404: {"detail": "Not Found"}, 405: {"detail": "Method Not Allowed"}}


def _unauthorized_or_unrouted(ctx: Any, response: Any, case: Any) -> bool | None:
    """A CDS Hooks route without a valid token is 401. Requests the router turns away before any
    handler runs (a path no route matches, a method the route lacks) may be 404 or 405."""
    assert case.operation.path in CDS_PATHS
    status = response.status_code
    unrouted = status in ROUTER_ANSWERS and response.json() == ROUTER_ANSWERS[status]
    if status != 401 and not unrouted:
        raise AssertionError(f"{case.operation.path} answered {status} without a token")
    return None


@locked_schema.include(path_regex=r"^/cds-services").parametrize()
@settings(FUZZ, max_examples=30)
def test_without_a_token_every_cds_route_is_401(case: Any) -> None:
    case.call_and_validate(
        checks=[not_a_server_error], additional_checks=[_unauthorized_or_unrouted]
    )


def _b64(doc: Any) -> str:
    raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


_HEADER = st.one_of(
    _JSONISH,
    st.fixed_dictionaries(
        {
            "alg": st.sampled_from(["ES384", "RS384", "none", "HS256", "ES256"]),
            "kid": st.one_of(st.just("fuzz-kid"), _LEAF),
        },
        optional={"typ": _LEAF, "jku": _LEAF},
    ),
)
_CLAIMS = st.one_of(
    _JSONISH,
    st.fixed_dictionaries(
        {"iss": st.one_of(st.just("https://ehr.fuzz.example"), _LEAF)},
        optional={k: _LEAF for k in ("aud", "exp", "iat", "jti", "nbf", "tenant", "sub")},
    ),
)
_TOKEN = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    st.builds(
        lambda h, c, s: f"{_b64(h)}.{_b64(c)}.{s}",
        _HEADER,
        _CLAIMS,
        st.text(alphabet="ABCDEFabcdef0123456789-_", max_size=40),
    ),
    st.builds(lambda b: f"{_b64(b)}.{_b64(b)}.", st.binary(max_size=30)),
)


@settings(FUZZ, max_examples=60)
@given(
    token=_TOKEN, path=st.sampled_from(["", "/ed-admission-risk", "/ed-admission-risk/feedback"])
)
def test_arbitrary_bearer_tokens_are_401(locked_server: str, token: str, path: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{locked_server}/cds-services{path}"
    with httpx.Client(timeout=10) as client:
        r = client.get(url, headers=headers) if not path else client.post(url, headers=headers)
    assert r.status_code == 401, (token, r.text)
    if len(token) > 20:
        assert token not in r.text
