"""Sign-in for the dashboard: OpenID Connect authorization code flow with PKCE (S256), ``state``
and ``nonce``, against the hospital's identity provider.

1. ``/dashboard/login``: discover ``{issuer}/.well-known/openid-configuration``, keep ``state``,
   ``nonce``, the PKCE ``code_verifier`` and where to return in a short server-side session
   (cookie ``cds_dashboard_login``), and send the browser to the authorization endpoint.
2. ``/dashboard/callback``: check ``state``, exchange the code with Authlib's OAuth client, verify
   the ID token (signature with the provider's JWKS, ``iss``, ``aud``, ``azp``, ``exp``, ``iat``,
   ``nonce``), read the role claim (from the ID token, else from the userinfo endpoint), and only
   for a member of the quality team create the dashboard session (cookie ``cds_dashboard``).

Tokens never reach the browser and are not kept: the session holds the user's subject, name and
the time of sign-in. Sessions live in the database (any replica can serve any request); the
provider's metadata is cached per process, its keys in the same ``JwksCache`` that holds the CDS
clients' keys (only a cache).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from cds_service.config import Settings
from cds_service.security.jwks import JwksCache, KeyUnavailable, UnknownKeyId
from cds_service.web.errors import SignInError
from cds_service.web.oauth import AsyncOAuth2Client, OAuthError

SESSION_COOKIE = "cds_dashboard"
LOGIN_COOKIE = "cds_dashboard_login"
SESSION_KIND = "dashboard"
LOGIN_KIND = "dashboard-login"
LOGIN_LIFETIME = timedelta(minutes=10)
COOKIE_PATH = "/dashboard"
SCOPES = "openid profile email"
# Asymmetric signatures only (no `none`, no HMAC with the client secret).
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384")
LEEWAY_SECONDS = 60
METADATA_MAX_AGE = 3600.0
KEYS_MIN_REFRESH = 30.0


@dataclass(frozen=True, slots=True)
class DashboardUser:
    subject: str
    name: str
    via: str  # "oidc" or "development"


@dataclass(frozen=True, slots=True)
class SignInConfig:
    """How the dashboard signs people in, from the settings."""

    mode: str  # "oidc", "development" or "unconfigured"
    problem: str = ""


def sign_in_config(settings: Settings) -> SignInConfig:
    oidc = (settings.oidc_issuer, settings.oidc_client_id)
    if all(oidc):
        issuer = str(settings.oidc_issuer)
        parts = urlsplit(issuer)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            return SignInConfig("unconfigured", "CDS_OIDC_ISSUER must be an https:// URL.")
        return SignInConfig("oidc")
    if any(oidc):
        both = (
            "Set both CDS_OIDC_ISSUER and CDS_OIDC_CLIENT_ID (and usually CDS_OIDC_CLIENT_SECRET)."
        )
        return SignInConfig("unconfigured", both)
    if settings.dashboard_dev_user:
        return SignInConfig("development")
    return SignInConfig("unconfigured", "No sign-in is configured for the dashboard.")


# --- the role claim ---------------------------------------------------------------------------


def claim_value(claims: dict[str, Any], name: str) -> Any:
    """The claim ``name``; a dotted name walks into objects when there is no such top-level claim
    (Keycloak's ``realm_access.roles``, for example)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def has_role(claims: dict[str, Any], claim: str, wanted: str) -> bool:
    """The claim equals ``wanted``, or is a list containing it, or a space-separated string
    (as OAuth scopes are written) one of whose words it is."""
    value = claim_value(claims, claim)
    if isinstance(value, str):
        return value == wanted or wanted in value.split()
    if isinstance(value, list | tuple):
        return any(isinstance(v, str | int) and str(v) == wanted for v in value)
    if isinstance(value, bool | int):
        return str(value).lower() == wanted.lower()
    return False


def display_name(claims: dict[str, Any]) -> str:
    for key in ("name", "preferred_username", "email"):
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()[:120]
    return str(claims.get("sub", "?"))[:120]


# --- login state ------------------------------------------------------------------------------


def new_login_state(next_url: str) -> dict[str, str]:
    return {
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "code_verifier": secrets.token_urlsafe(64),  # 86 characters of [A-Za-z0-9_-]
        "next": safe_next(next_url),
    }


def safe_next(value: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect."""
    if not value or value.startswith("/dashboard/login"):
        return "/dashboard"
    if value != "/dashboard" and not value.startswith(("/dashboard?", "/dashboard/")):
        return "/dashboard"
    if "\\" in value or "//" in value or any(ord(ch) < 0x21 for ch in value):
        return "/dashboard"
    return value[:2000]


def same_secret(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())


# --- the provider -----------------------------------------------------------------------------


class OidcClient:
    """The identity provider as this service sees it: metadata, keys, token and userinfo."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.client_secret = settings.oidc_client_secret
        self.redirect_uri = f"{settings.public_base_url}/dashboard/callback"
        self.timeout = settings.fhir_timeout_seconds
        self._http = http
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._jwks = JwksCache(
            http, min_refresh_seconds=KEYS_MIN_REFRESH, max_age_seconds=METADATA_MAX_AGE
        )

    async def _get_json(
        self, url: str, what: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            response = await self._http.get(
                url, headers={"Accept": "application/json", **(headers or {})}
            )
            response.raise_for_status()
            data = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInError(
                502, f"The identity provider's {what} could not be read ({type(exc).__name__})."
            ) from None
        if not isinstance(data, dict):
            raise SignInError(502, f"The identity provider's {what} is not a JSON object.")
        return data

    async def metadata(self) -> dict[str, Any]:
        now = time.monotonic()
        if self._metadata is not None and now - self._metadata[0] < METADATA_MAX_AGE:
            return self._metadata[1]
        doc = await self._get_json(
            f"{self.issuer}/.well-known/openid-configuration", "configuration"
        )
        if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
            raise SignInError(502, "The identity provider's configuration names another issuer.")
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(key), str):
                raise SignInError(502, f"The identity provider's configuration lacks {key}.")
        self._metadata = (now, doc)
        return doc

    async def keys(self, kid: str | None) -> KeySet:
        jwks_uri = str((await self.metadata())["jwks_uri"])
        try:
            return await self._jwks.keys_at(jwks_uri, kid)
        except UnknownKeyId:
            raise SignInError(
                401, "The ID token is signed with a key the provider does not publish."
            ) from None
        except KeyUnavailable as exc:
            raise SignInError(
                502, f"The identity provider's keys could not be read ({exc})."
            ) from None

    def _auth_method(self, metadata: dict[str, Any]) -> str:
        if not self.client_secret:
            return "none"
        supported = metadata.get("token_endpoint_auth_methods_supported")
        if (
            isinstance(supported, list)
            and "client_secret_basic" not in supported
            and "client_secret_post" in supported
        ):
            return "client_secret_post"
        return "client_secret_basic"

    def _oauth(self, metadata: dict[str, Any]) -> Any:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method=self._auth_method(metadata),
            scope=SCOPES,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=self.timeout,
            follow_redirects=False,
        )

    async def authorization_url(self, login: dict[str, str]) -> str:
        metadata = await self.metadata()
        async with self._oauth(metadata) as oauth:
            url, _state = oauth.create_authorization_url(
                metadata["authorization_endpoint"],
                state=login["state"],
                code_verifier=login["code_verifier"],
                nonce=login["nonce"],
            )
        return str(url)

    async def sign_in(self, code: str, login: dict[str, str], role_claim: str) -> dict[str, Any]:
        """Code -> tokens -> the verified ID token's claims, completed from the userinfo
        endpoint when they lack the role claim (many providers keep groups out of ID tokens).
        The tokens are dropped here."""
        token = await self._exchange(code, login)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInError(502, "The identity provider returned no ID token.")
        claims = await self.verify_id_token(id_token, login["nonce"])
        access = token.get("access_token")
        if role_claim.split(".")[0] not in claims and isinstance(access, str):
            info = await self.userinfo(access)
            if info.get("sub") == claims.get("sub"):
                claims = {**info, **claims}
        return claims

    async def _exchange(self, code: str, login: dict[str, str]) -> dict[str, Any]:
        metadata = await self.metadata()
        try:
            async with self._oauth(metadata) as oauth:
                token = await oauth.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=login["code_verifier"],
                )
        except OAuthError as exc:
            raise SignInError(
                502, f"The identity provider refused the sign-in code ({exc.error})."
            ) from None
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInError(
                502, f"The identity provider's token endpoint failed ({type(exc).__name__})."
            ) from None
        return dict(token)

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            header = jws.extract_compact(id_token.encode()).headers()
        except (JoseError, ValueError, UnicodeError) as exc:
            raise SignInError(401, f"The ID token is malformed ({type(exc).__name__}).") from None
        if header.get("alg") not in ID_TOKEN_ALGORITHMS:
            raise SignInError(401, "The ID token is not signed with an accepted algorithm.")
        kid = header.get("kid")
        key_set = await self.keys(str(kid) if kid is not None else None)
        try:
            token = jwt.decode(id_token, key_set, algorithms=list(ID_TOKEN_ALGORITHMS))
        except (JoseError, ValueError) as exc:
            raise SignInError(401, f"The ID token's signature is not valid ({exc}).") from None
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self.issuer},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise SignInError(401, f"The ID token was refused ({exc}).") from None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.client_id not in audiences:
            raise SignInError(401, "The ID token was issued to another client (aud).")
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise SignInError(401, "The ID token names another authorized party (azp).")
        return claims

    async def userinfo(self, access_token: str) -> dict[str, Any]:
        metadata = await self.metadata()
        url = metadata.get("userinfo_endpoint")
        if not isinstance(url, str):
            return {}
        return await self._get_json(
            url, "userinfo", headers={"Authorization": f"Bearer {access_token}"}
        )
