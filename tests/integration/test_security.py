"""JWT verification on every CDS Hooks route, with real ES384/RS384 tokens, a real JWKS endpoint on
loopback, and the jti store in the database."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa
from joserfc import jwk

from cds_service.cds_hooks.examples import ed_case, ed_prefetch, hook_body
from cds_service.main import create_app
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from cds_service.security.trusted_callers import load_trusted_callers
from tests.conftest import REPO_ROOT
from tests.utils.server import JwksServer, ServerThread
from tests.utils.service import FHIR_BASE, NOW, PUBLIC_BASE, Database, make_settings
from tests.utils.service import new_database as _new_database

EHR = "https://ehr.example.org"
RS = "https://rs-ehr.example.org"
SERVICE = "ed-admission-risk"
AUD = f"{PUBLIC_BASE}/cds-services/{SERVICE}"


@dataclass
class Secured:
    client: httpx.Client
    jwks: JwksServer
    es_key: jwk.Key
    rs_key: jwk.Key
    db: Database
    fhir: respx.MockRouter

    def post(self, token: str | None, body: Any = None, service: str = SERVICE) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        case = ed_case(NOW)
        default = hook_body(
            "encounter-start", "syn-ed-1", ed_prefetch(case), encounter_id=case["encounter_id"]
        )
        return self.client.post(f"/cds-services/{service}", json=body or default, headers=headers)

    def es(self, **kw: Any) -> str:
        kw.setdefault("aud", AUD)
        kw.setdefault("now", NOW.timestamp())
        return sign(self.es_key, iss=EHR, tenant="hospital-1", **kw)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def secured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Secured]:
    tmp = tmp_path_factory.mktemp("secured")
    db = _new_database(str(request.param), tmp)
    es_key, rs_key = generate_key("ES384"), generate_key("RS384")
    with JwksServer() as jwks:
        jwks.jwks = public_jwks(es_key)
        callers = [
            {"iss": EHR, "jwks_url": jwks.url, "tenant": "hospital-1", "fhir_servers": [FHIR_BASE]},
            {"iss": RS, "jwks": public_jwks(rs_key), "fhir_servers": []},
        ]
        path = tmp / "trusted-callers.json"
        path.write_text(json.dumps(callers))
        settings = make_settings(
            db.url, tmp, auth_disabled=False, trusted_issuers=path, jwks_min_refresh_seconds=0.5
        )
        router = respx.MockRouter(assert_all_called=False)
        app = create_app(
            settings, clock=lambda: NOW, transport=httpx.MockTransport(router.async_handler)
        )
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as c:
            yield Secured(c, jwks, es_key, rs_key, db, router)
    db.close()


def test_valid_es384_token_with_extra_claims_is_accepted(secured: Secured) -> None:
    token = secured.es(sub="Practitioner/syn-doc-1", nbf=int(NOW.timestamp()) - 5)
    r = secured.post(token)
    assert r.status_code == 200, r.text
    card = r.json()["cards"][0]
    rows = secured.db.rows("SELECT caller_iss FROM card_audit WHERE card_uuid = :u", u=card["uuid"])
    assert rows == [{"caller_iss": EHR}]


def test_valid_rs384_token_with_inline_jwks_is_accepted(secured: Secured) -> None:
    token = sign(secured.rs_key, iss=RS, aud=[AUD], now=NOW.timestamp())
    assert secured.post(token).status_code == 200


def test_discovery_and_feedback_need_tokens_for_their_own_urls(secured: Secured) -> None:
    assert secured.client.get("/cds-services").status_code == 401
    ok = secured.es(aud=f"{PUBLIC_BASE}/cds-services")
    assert (
        secured.client.get("/cds-services", headers={"Authorization": f"Bearer {ok}"}).status_code
        == 200
    )
    wrong = secured.es(aud=AUD)  # a service URL is not the discovery URL
    assert (
        secured.client.get(
            "/cds-services", headers={"Authorization": f"Bearer {wrong}"}
        ).status_code
        == 401
    )
    card = secured.post(secured.es()).json()["cards"][0]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": "2026-03-14T09:35:00Z",
            }
        ]
    }
    token = secured.es(aud=f"{AUD}/feedback")
    r = secured.client.post(
        f"/cds-services/{SERVICE}/feedback",
        json=feedback,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200


def _forge_header(token: str, **changes: Any) -> str:
    head, payload, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    header.update(changes)
    new = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{new}.{payload}.{signature}"


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("missing", lambda s: None, "missing bearer token"),
        ("garbage", lambda s: "not.a.jwt", "malformed token"),
        ("expired", lambda s: s.es(now=NOW.timestamp() - 4000), "token expired"),
        ("future iat", lambda s: s.es(now=NOW.timestamp() + 600), "issued in the future"),
        ("wrong audience", lambda s: s.es(aud=f"{PUBLIC_BASE}/cds-services"), "audience"),
        ("base url audience", lambda s: s.es(aud=PUBLIC_BASE), "audience"),
        ("too long lifetime", lambda s: s.es(lifetime=7200), "lifetime"),
        (
            "untrusted issuer",
            lambda s: sign(s.es_key, iss="https://evil.example", aud=AUD, now=NOW.timestamp()),
            "untrusted issuer",
        ),
        (
            "unknown kid",
            lambda s: sign(
                generate_key("ES384"), iss=EHR, aud=AUD, now=NOW.timestamp(), tenant="hospital-1"
            ),
            "unknown key id",
        ),
        (
            "wrong key same kid",
            lambda s: sign(
                generate_key("ES384", kid=s.es_key.kid),
                iss=EHR,
                aud=AUD,
                now=NOW.timestamp(),
                tenant="hospital-1",
            ),
            "invalid signature",
        ),
        ("alg none", lambda s: _forge_header(s.es(), alg="none"), "algorithm not allowed"),
        ("alg HS256", lambda s: _forge_header(s.es(), alg="HS256"), "algorithm not allowed"),
        ("alg swapped", lambda s: _forge_header(s.es(), alg="RS384"), "invalid signature"),
        ("foreign jku", lambda s: s.es(header={"jku": "https://evil.example/jwks"}), "jku"),
        (
            "wrong tenant",
            lambda s: sign(
                s.es_key, iss=EHR, aud=AUD, now=NOW.timestamp(), tenant="other-hospital"
            ),
            "tenant",
        ),
        ("no jti", lambda s: s.es(jti=None), "jti"),
    ],
)
def test_rejections(secured: Secured, name: str, make: Any, reason: str) -> None:
    token = make(secured)
    if name == "no jti":
        token = _strip_claim(secured, "jti")
    r = secured.post(token)
    assert r.status_code == 401, (name, r.text)
    assert reason in r.json()["issue"][0]["diagnostics"], (name, r.text)
    assert r.headers["www-authenticate"].startswith("Bearer")
    if token and len(token) > 40:
        assert token not in r.text and token.split(".")[1] not in r.text


def _strip_claim(secured: Secured, claim: str) -> str:
    from joserfc import jwt

    body = {
        "iss": EHR,
        "aud": AUD,
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 60,
        "tenant": "hospital-1",
    }
    body.pop(claim, None)
    return jwt.encode(
        {"alg": "ES384", "kid": secured.es_key.kid, "typ": "JWT"},
        body,
        secured.es_key,
        algorithms=["ES384"],
    )


def test_replayed_jti_is_rejected(secured: Secured) -> None:
    token = secured.es()
    assert secured.post(token).status_code == 200
    again = secured.post(token)
    assert again.status_code == 401 and "replayed" in again.text


def test_matching_jku_is_honoured(secured: Secured) -> None:
    assert secured.post(secured.es(header={"jku": secured.jwks.url})).status_code == 200


def test_key_rotation_refreshes_jwks_once_and_rate_limits(secured: Secured) -> None:
    new_key = generate_key("ES384")
    secured.jwks.jwks = public_jwks(secured.es_key, new_key)
    time.sleep(0.6)  # past the refresh rate limit of this test's settings
    hits = secured.jwks.hits
    token = sign(new_key, iss=EHR, aud=AUD, now=NOW.timestamp(), tenant="hospital-1")
    assert secured.post(token).status_code == 200
    assert secured.jwks.hits == hits + 1
    for _ in range(3):  # random kids right after a refresh: no new fetch
        bogus = sign(
            generate_key("ES384"), iss=EHR, aud=AUD, now=NOW.timestamp(), tenant="hospital-1"
        )
        assert secured.post(bogus).status_code == 401
    assert secured.jwks.hits == hits + 1


def test_untrusted_fhir_server_is_refused_before_any_request(secured: Secured) -> None:
    route = secured.fhir.get(url__regex=r".*")
    case = ed_case(NOW)
    prefetch = ed_prefetch(case)
    del prefetch["observations"]
    body = hook_body(
        "encounter-start",
        "syn-ed-1",
        prefetch,
        encounter_id=case["encounter_id"],
        fhir_server="https://attacker.example/fhir",
    )
    r = secured.post(secured.es(), body)
    assert r.status_code == 403 and "fhirServer" in r.text
    assert route.call_count == 0
    rs_token = sign(secured.rs_key, iss=RS, aud=AUD, now=NOW.timestamp())
    body["fhirServer"] = FHIR_BASE  # trusted for EHR, not for RS
    assert secured.post(rs_token, body).status_code == 403
    assert route.call_count == 0


def test_cds_hooks_sandbox_key_is_a_valid_trusted_caller_entry(tmp_path: Path) -> None:
    sandbox = (
        json.loads((REPO_ROOT.parent / "shared" / "cds-hooks-sandbox-jwks.json").read_text())
        if (REPO_ROOT.parent / "shared").is_dir()
        else None
    )
    if sandbox is None:
        sandbox = json.loads(
            (REPO_ROOT / "docs" / "examples" / "trusted-callers.json").read_text()
        )[0]["jwks"]
    entry = [
        {
            "iss": "https://sandbox.cds-hooks.org",
            "jwks": sandbox,
            "fhir_servers": ["https://launch.smarthealthit.org/v/r4/fhir"],
        }
    ]
    path = tmp_path / "callers.json"
    path.write_text(json.dumps(entry))
    issuers = load_trusted_callers(path)
    assert issuers["https://sandbox.cds-hooks.org"].jwks is not None
    documented = json.loads((REPO_ROOT / "docs" / "examples" / "trusted-callers.json").read_text())
    assert documented[0]["iss"] == "https://sandbox.cds-hooks.org"
    assert documented[0]["jwks"] == sandbox


def test_a_token_spent_on_a_refused_call_cannot_be_replayed(secured: Secured) -> None:
    token = secured.es()
    refused = secured.post(token, body={"hook": "encounter-start", "hookInstance": "x"})
    assert refused.status_code == 400, refused.text
    again = secured.post(token)
    assert again.status_code == 401 and "replayed" in again.text


def test_a_jti_another_replica_committed_refuses_the_call_and_keeps_no_row(
    secured: Secured,
) -> None:
    """The jti goes in with the audit row: a replica that never saw the token in memory learns
    of the other's use in its own transaction, and returns no card and writes no row."""
    jti = "replayed-on-another-replica"
    key = hashlib.sha256(f"{EHR}\0{jti}".encode()).hexdigest()
    with secured.db.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO seen_jti (jti_hash, expires_at) VALUES (:k, :e)"),
            {"k": key, "e": NOW + timedelta(hours=1)},
        )
    before = secured.db.rows("SELECT count(*) AS n FROM card_audit")[0]["n"]
    r = secured.post(secured.es(jti=jti))
    assert r.status_code == 401 and "replayed" in r.text
    assert secured.db.rows("SELECT count(*) AS n FROM card_audit")[0]["n"] == before


def test_an_accepted_call_commits_its_jti_and_its_row(secured: Secured) -> None:
    jti = "committed-with-its-row"
    r = secured.post(secured.es(jti=jti))
    assert r.status_code == 200, r.text
    key = hashlib.sha256(f"{EHR}\0{jti}".encode()).hexdigest()
    assert secured.db.rows("SELECT jti_hash FROM seen_jti WHERE jti_hash = :k", k=key)
    uuid = r.json()["cards"][0]["uuid"]
    assert secured.db.rows("SELECT card_uuid FROM card_audit WHERE card_uuid = :u", u=uuid)
