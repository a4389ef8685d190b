"""JWT verification of CDS clients, with real keys, real signatures and a real replay store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from joserfc import jwk

from cds_service.db.engine import make_engine, upgrade
from cds_service.security.jwks import JwksCache
from cds_service.security.jwt_auth import Authenticator, AuthError, Caller
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from cds_service.security.replay import ReplayStore
from cds_service.security.trusted_callers import parse_trusted_callers

NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/ed-admission-risk"
KEY = generate_key("ES384", kid="k1")


@pytest.fixture()
def auth(tmp_path: Path) -> Iterator[Authenticator]:
    engine = make_engine(f"sqlite:///{tmp_path / 'auth.sqlite3'}")
    upgrade(engine)
    issuers = parse_trusted_callers(
        [
            {"iss": ISS, "jwks": public_jwks(KEY), "tenant": "t1"},
            {"iss": "https://keys-by-url.example", "jwks_url": "https://keys.example/jwks"},
        ]
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    yield Authenticator(
        issuers,
        JwksCache(http),
        ReplayStore(engine),
        max_lifetime_seconds=600,
        clock=lambda: NOW,
    )
    engine.dispose()


def token(key: jwk.Key = KEY, **changes: Any) -> str:
    claims: dict[str, Any] = {"iss": ISS, "aud": AUD, "now": NOW.timestamp(), "tenant": "t1"}
    claims.update(changes)
    return sign(key, **claims)


def verify(auth: Authenticator, header: str | None, audiences: tuple[str, ...] = (AUD,)) -> Caller:
    async def run() -> Caller:
        return await auth.verify(header, audiences)

    return anyio.run(run)


def refused(auth: Authenticator, header: str | None, audiences: tuple[str, ...] = (AUD,)) -> str:
    with pytest.raises(AuthError) as info:
        verify(auth, header, audiences)
    return str(info.value)


def test_a_valid_token_names_the_caller(auth: Authenticator) -> None:
    caller = verify(auth, "Bearer " + token(sub="cds-client-7"))
    assert caller.issuer.iss == ISS
    assert caller.subject == "cds-client-7" and caller.tenant == "t1"


def test_any_of_the_endpoint_audiences_is_accepted(auth: Authenticator) -> None:
    feedback = AUD + "/feedback"
    assert verify(auth, "Bearer " + token(), (feedback, AUD)).issuer.iss == ISS


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing bearer token"),
        ("Basic abc", "missing bearer token"),
        ("Bearer not-a-jwt", "malformed token"),
        ("Bearer a.b.c", "malformed token"),
    ],
)
def test_malformed_authorization_is_refused(
    auth: Authenticator, header: str | None, reason: str
) -> None:
    assert refused(auth, header) == reason


def test_the_same_token_twice_is_a_replay(auth: Authenticator) -> None:
    header = "Bearer " + token()
    verify(auth, header)
    assert refused(auth, header) == "token replayed (jti already used)"


def test_audience_must_be_the_endpoint_called(auth: Authenticator) -> None:
    header = "Bearer " + token(aud="https://cds.example.org/cds-services/other")
    assert refused(auth, header) == "token audience is not this endpoint"


def test_expired_token_is_refused(auth: Authenticator) -> None:
    header = "Bearer " + token(now=NOW.timestamp() - 3600, lifetime=300)
    assert refused(auth, header) == "token expired"


def test_lifetime_above_the_maximum_is_refused(auth: Authenticator) -> None:
    assert refused(auth, "Bearer " + token(lifetime=3600)) == "token lifetime exceeds the maximum"


def test_unknown_issuer_is_refused_before_any_key_work(auth: Authenticator) -> None:
    assert refused(auth, "Bearer " + token(iss="https://evil.example")) == "untrusted issuer"


def test_signature_by_another_key_with_the_same_kid_is_refused(auth: Authenticator) -> None:
    forged = generate_key("ES384", kid="k1")
    assert refused(auth, "Bearer " + token(forged)) == "invalid signature"


def test_symmetric_and_none_algorithms_are_refused(auth: Authenticator) -> None:
    for alg in ("HS256", "none"):
        header = _with_header(token(), alg=alg)
        assert refused(auth, header) == "token algorithm not allowed"


def test_tenant_must_match_the_issuer_entry(auth: Authenticator) -> None:
    assert refused(auth, "Bearer " + token(tenant="t2")) == "tenant not allowed for issuer"


def test_jku_other_than_the_configured_key_url_is_refused(auth: Authenticator) -> None:
    header = "Bearer " + sign(
        KEY,
        iss="https://keys-by-url.example",
        aud=AUD,
        now=NOW.timestamp(),
        header={"jku": "https://evil.example/jwks"},
    )
    assert refused(auth, header) == "jku is not the issuer's configured key URL"


def test_token_without_kid_is_refused(auth: Authenticator) -> None:
    assert refused(auth, _with_header(token(), kid=None)) == "token header has no kid"


def _with_header(raw: str, **changes: Any) -> str:
    """The token with its header changed (signature left as it was)."""
    import base64
    import json

    head, body, sig = raw.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    header.update(changes)
    header = {k: v for k, v in header.items() if v is not None}
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"Bearer {encoded}.{body}.{sig}"
