"""Verification of the CDS client's JWT (CDS Hooks 2.0 "Trusting CDS Clients" and the security
best-practice page), done with joserfc (Authlib's JOSE implementation; ``authlib.jose`` itself is
deprecated in its favour).

Order matters: the issuer and key are checked before any signature work, the replay store is
touched only after the signature and every claim passed. Failure messages are short, name the
check that failed, and never include the token.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError, MissingClaimError

from cds_service.security.jwks import JwksCache, KeyUnavailable
from cds_service.security.replay import JtiClaim, ReplayStore
from cds_service.security.trusted_callers import TrustedIssuer

# Asymmetric algorithms only: never `none`, never HMAC (CDS Hooks 2.0 forbids both).
ALLOWED_ALGORITHMS = ("ES384", "RS384", "ES256", "RS256", "ES512", "RS512")


class AuthError(Exception):
    """HTTP 401 with this short reason; ``detail`` is for the service's log only (what an
    integrator needs to fix it, e.g. the expected audience), never patient data."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Caller:
    issuer: TrustedIssuer
    subject: str | None
    tenant: str | None
    jti: str
    # verify(defer_replay=True): the jti is reserved here and goes to the shared store with
    # the call's audit row (one commit per call); whoever ends the call records it otherwise.
    pending: JtiClaim | None = None


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3:
        raise AuthError("malformed token")
    try:
        header, claims = _b64json(parts[0]), _b64json(parts[1])
    except (ValueError, UnicodeError):
        raise AuthError("malformed token") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AuthError("malformed token")
    return header, claims


class Authenticator:
    def __init__(
        self,
        issuers: dict[str, TrustedIssuer],
        jwks: JwksCache,
        replay: ReplayStore,
        *,
        leeway_seconds: int = 60,
        max_lifetime_seconds: int = 3600,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.issuers = issuers
        self._jwks = jwks
        self._replay = replay
        self.replay = replay
        self._leeway = leeway_seconds
        self._max_lifetime = max_lifetime_seconds
        self._clock = clock

    def purge_expired(self) -> int:
        return self._replay.purge(self._clock())

    async def verify(
        self, authorization: str | None, audiences: tuple[str, ...], *, defer_replay: bool = False
    ) -> Caller:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise AuthError("missing bearer token")
        token = authorization[7:].strip()
        header, unverified = _unverified(token)
        alg, kid = _algorithm_and_kid(header)
        issuer = self._issuer(header, unverified)
        try:
            keys = await self._jwks.keys_for(issuer, kid)
        except KeyUnavailable as exc:
            raise AuthError(str(exc)) from None
        try:
            claims = jwt.decode(token, keys, algorithms=[alg]).claims
        except JoseError:
            raise AuthError("invalid signature") from None
        self._check_claims(claims, issuer, audiences)
        return await self._first_use(claims, issuer, defer_replay)

    def _issuer(self, header: dict[str, Any], unverified: dict[str, Any]) -> TrustedIssuer:
        """The trusted issuer the token names, before any signature work."""
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise AuthError("untrusted issuer")
        jku = header.get("jku")
        # A jku is never fetched: with a configured key URL it must equal it; with inline keys
        # (the CDS Hooks sandbox sends a jku) the configured keys are used and the jku ignored.
        if jku is not None and issuer.jwks_url is not None and jku != issuer.jwks_url:
            raise AuthError("jku is not the issuer's configured key URL")
        return issuer

    def _check_claims(
        self, claims: dict[str, Any], issuer: TrustedIssuer, audiences: tuple[str, ...]
    ) -> None:
        registry = jwt.JWTClaimsRegistry(
            now=int(self._clock().timestamp()),
            leeway=self._leeway,
            iss={"essential": True, "value": issuer.iss},
            aud={"essential": True, "values": list(audiences)},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            detail = None
            if getattr(exc, "claim", None) == "aud":
                got = str(claims.get("aud"))[:200]
                detail = f"expected audience {audiences[0]}, the token's aud is {got}"
            raise AuthError(_claim_message(exc), detail=detail) from None
        if int(claims["exp"]) - int(claims["iat"]) > self._max_lifetime:
            raise AuthError("token lifetime exceeds the maximum")
        if issuer.tenant is not None and claims.get("tenant") != issuer.tenant:
            raise AuthError("tenant not allowed for issuer")

    async def _first_use(
        self, claims: dict[str, Any], issuer: TrustedIssuer, defer: bool = False
    ) -> Caller:
        """Only a token that passed every other check reaches the replay store."""
        jti = str(claims["jti"])
        expires = datetime.fromtimestamp(int(claims["exp"]) + self._leeway, UTC)
        pending = self._replay.claim(issuer.iss, jti, expires, self._clock()) if defer else None
        if defer and pending is None:
            raise AuthError("token replayed (jti already used)")
        if not defer and not await self._replay.first_use_within_budget(
            issuer.iss, jti, expires, self._clock()
        ):
            raise AuthError("token replayed (jti already used)")
        sub, tenant = claims.get("sub"), claims.get("tenant")
        return Caller(
            issuer=issuer,
            subject=sub if isinstance(sub, str) else None,
            tenant=tenant if isinstance(tenant, str) else None,
            jti=jti,
            pending=pending,
        )


def _algorithm_and_kid(header: dict[str, Any]) -> tuple[str, str]:
    alg = header.get("alg")
    if alg not in ALLOWED_ALGORITHMS:
        raise AuthError("token algorithm not allowed")
    if header.get("typ") not in (None, "JWT"):
        raise AuthError("token type must be JWT")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise AuthError("token header has no kid")
    return str(alg), kid


_CLAIM_MESSAGES = {
    "exp": "token expired",
    "iat": "token issued in the future",
    "nbf": "token not yet valid",
    "aud": "token audience is not this endpoint",
    "jti": "token has no jti",
    "iss": "untrusted issuer",
}


def _claim_message(exc: JoseError) -> str:
    claim = getattr(exc, "claim", None)
    if isinstance(exc, MissingClaimError):
        return f"token has no {claim}"
    return _CLAIM_MESSAGES.get(str(claim), "invalid token claims")
