"""SMART App Launch 2.x, EHR launch, as a server-side (confidential or public) client.

1. ``/smart/launch?iss&launch``: check ``iss``, discover ``{iss}/.well-known/smart-configuration``,
   keep ``state`` and the PKCE ``code_verifier`` in a server-side session, and send the browser to
   the authorization endpoint (``response_type=code``, ``client_id``, ``redirect_uri``,
   ``launch``, ``scope`` with ``launch``, ``state``, ``aud={iss}``, ``code_challenge`` S256).
2. ``/smart/callback?code&state``: check ``state`` against the session, exchange the code with
   Authlib's OAuth client (``code_verifier``; HTTP Basic for a confidential client, ``client_id``
   in the body for a public one), and keep the access token and the launch context (``patient``,
   ``encounter``, ``appContext``) in a new session that expires with the token.

The browser only ever holds a cookie with a random session id. The access token and the launch's
patient and encounter ids are stored encrypted with a key derived from that id, so the session
table alone neither gives access to the FHIR server nor says whom a session was about.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cds_service.config import Environment, Settings
from cds_service.security.trusted_callers import (
    TrustedCallersError,
    TrustedIssuer,
    load_trusted_callers,
    normalize_base,
)
from cds_service.web.errors import SignInError
from cds_service.web.oauth import AsyncOAuth2Client, OAuthError
from cds_service.web.smart.identity import launch_user

SESSION_KIND = "smart"
LAUNCH_SECONDS = 600  # from the launch to the return from the authorization server
DEFAULT_TOKEN_SECONDS = 3600  # when the token response has no expires_in (SHOULD be <= 1 h)
MAX_PARAM = 2048
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
HANDLE = re.compile(r"[A-Za-z0-9_-]{16}")


@dataclass(frozen=True, slots=True)
class SmartConfiguration:
    authorization_endpoint: str
    token_endpoint: str


def cookie_name(handle: str) -> str:
    return f"cds_smart_{handle}"


def new_handle() -> str:
    """A short, non-secret name for one launch: lets several launches (several patients) live
    side by side in one browser without ever mixing them up."""
    return secrets.token_urlsafe(12)


def redirect_uri(settings: Settings) -> str:
    return f"{settings.public_base_url}/smart/callback"


def requested_scope(settings: Settings) -> str:
    scopes = settings.smart_scopes.split()
    if "launch" not in scopes:
        scopes.insert(0, "launch")
    return " ".join(dict.fromkeys(scopes))


def _is_http_url(url: str, *, https_only: bool) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    schemes = ("https",) if https_only else ("https", "http")
    return (
        parts.scheme in schemes
        and bool(parts.hostname)
        and not parts.username
        and not parts.password
        and not parts.fragment
    )


def allowed_fhir_servers(
    settings: Settings, issuers: dict[str, TrustedIssuer] | None
) -> set[str] | None:
    """The FHIR servers a launch may name as ``iss``: those of the trusted-callers file.
    ``None`` means any http(s) URL (development only)."""
    if settings.environment is Environment.development:
        return None
    if issuers is None:
        path = settings.trusted_issuers_path
        try:
            issuers = load_trusted_callers(path) if path.is_file() else {}
        except TrustedCallersError:
            issuers = {}
    return {s for issuer in issuers.values() for s in issuer.fhir_servers}


def check_iss(iss: str | None, launch: str | None, allowed: set[str] | None, dev: bool) -> str:
    if not iss or not launch:
        raise SignInError(
            400,
            "This app opens from the EHR (the risk card's link): the launch needs both 'iss' "
            "and 'launch'.",
            title="Not an EHR launch",
        )
    if len(iss) > MAX_PARAM or len(launch) > MAX_PARAM:
        raise SignInError(400, "The launch parameters are too long.", title="Launch refused")
    if not _is_http_url(iss, https_only=not dev):
        raise SignInError(
            400,
            "'iss' must be the FHIR server's https URL." if not dev else "'iss' is not a URL.",
            title="Launch refused",
        )
    base = normalize_base(iss)
    if allowed is not None and base not in allowed:
        raise SignInError(
            403,
            "This FHIR server is not registered with the risk service "
            "(trusted-callers file, 'fhir_servers').",
            title="Launch refused",
        )
    return iss


async def discover(http: httpx.AsyncClient, iss: str, dev: bool) -> SmartConfiguration:
    url = f"{iss.rstrip('/')}/.well-known/smart-configuration"
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise SignInError(
            502,
            f"The FHIR server's SMART configuration could not be read ({type(exc).__name__}).",
            title="EHR not reachable",
        ) from None
    if response.status_code != 200:
        raise SignInError(
            502,
            f"The FHIR server answered HTTP {response.status_code} for "
            ".well-known/smart-configuration.",
            title="EHR configuration missing",
        )
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise SignInError(
            502, "The SMART configuration is not JSON.", title="EHR configuration invalid"
        )
    endpoints = {}
    for key in ("authorization_endpoint", "token_endpoint"):
        value = doc.get(key)
        if not isinstance(value, str) or not _is_http_url(value, https_only=not dev):
            raise SignInError(
                502,
                f"The SMART configuration has no usable '{key}'.",
                title="EHR configuration invalid",
            )
        endpoints[key] = value
    methods = doc.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise SignInError(
            502,
            "The authorization server does not support PKCE with S256, which SMART requires.",
            title="EHR configuration invalid",
        )
    return SmartConfiguration(endpoints["authorization_endpoint"], endpoints["token_endpoint"])


def oauth_client(settings: Settings) -> AsyncOAuth2Client:
    secret = settings.smart_client_secret
    return AsyncOAuth2Client(
        client_id=settings.smart_client_id,
        client_secret=secret,
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
        scope=requested_scope(settings),
        redirect_uri=redirect_uri(settings),
        code_challenge_method="S256",
        timeout=settings.fhir_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
    )


def authorization_url(
    settings: Settings,
    config: SmartConfiguration,
    *,
    iss: str,
    launch: str,
    state: str,
    code_verifier: str,
) -> str:
    client = oauth_client(settings)
    url, _ = client.create_authorization_url(
        config.authorization_endpoint,
        state=state,
        code_verifier=code_verifier,
        launch=launch,
        aud=iss,
    )
    return str(url)


@dataclass(frozen=True, slots=True)
class GrantedLaunch:
    access_token: str
    expires_in: int
    scope: str
    patient: str
    encounter: str | None
    app_context: dict[str, Any] | None
    need_patient_banner: bool | None
    user: str | None = None  # fhirUser of the id token (identity.launch_user)


def _app_context(raw: Any) -> dict[str, Any] | None:
    """CDS Hooks passes the link's appContext to the app as a string (JSON for our cards)."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and len(raw) <= 4096:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None


async def exchange_code(
    settings: Settings, token_endpoint: str, code: str, code_verifier: str
) -> GrantedLaunch:
    try:
        async with oauth_client(settings) as client:
            token = await client.fetch_token(
                token_endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
    except OAuthError as exc:
        error = re.sub(r"[^a-z_]", "", str(getattr(exc, "error", "")).lower())[:40]
        raise SignInError(
            502,
            f"The EHR refused to exchange the authorization code ({error or 'error'}). "
            "Open the app again from the card.",
            title="Authorization failed",
        ) from None
    except (httpx.HTTPError, ValueError) as exc:
        raise SignInError(
            502,
            f"The EHR's token endpoint did not answer usefully ({type(exc).__name__}).",
            title="Authorization failed",
        ) from None
    access = token.get("access_token")
    if not isinstance(access, str) or not access:
        raise SignInError(
            502, "The token response has no access token.", title="Authorization failed"
        )
    if str(token.get("token_type", "")).lower() != "bearer":
        raise SignInError(502, "The token is not a Bearer token.", title="Authorization failed")
    patient = token.get("patient")
    if not isinstance(patient, str) or not FHIR_ID.fullmatch(patient):
        raise SignInError(
            400,
            "The EHR did not pass a patient with the launch; open the app from the patient's card.",
            title="No patient in context",
        )
    encounter = token.get("encounter")
    if not (isinstance(encounter, str) and FHIR_ID.fullmatch(encounter)):
        encounter = None
    raw_expiry = token.get("expires_in")
    expires_in = (
        int(raw_expiry)
        if isinstance(raw_expiry, int | float) and not isinstance(raw_expiry, bool)
        else DEFAULT_TOKEN_SECONDS
    )
    if expires_in <= 0:
        raise SignInError(
            502, "The access token has already expired.", title="Authorization failed"
        )
    banner = token.get("need_patient_banner")
    return GrantedLaunch(
        access_token=access,
        expires_in=min(expires_in, settings.session_lifetime_seconds),
        scope=str(token.get("scope", "")),
        patient=patient,
        encounter=encounter,
        app_context=_app_context(token.get("appContext")),
        need_patient_banner=banner if isinstance(banner, bool) else None,
        user=launch_user(token.get("id_token"), settings.smart_client_id),
    )


def lifetime(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)


# --- the access token at rest: encrypted with a key only the cookie holder can derive ---------


def _token_key(session_id: str) -> bytes:
    return hashlib.sha256(b"cds-smart-access-token|" + session_id.encode()).digest()


def seal_token(session_id: str, handle: str, token: str) -> str:
    nonce = secrets.token_bytes(12)
    sealed = AESGCM(_token_key(session_id)).encrypt(nonce, token.encode(), handle.encode())
    return base64.urlsafe_b64encode(nonce + sealed).decode()


def open_token(session_id: str, handle: str, sealed: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
        plain = AESGCM(_token_key(session_id)).decrypt(raw[:12], raw[12:], handle.encode())
    except (ValueError, InvalidTag):  # wrong key, tampered data: the session is unusable
        return None
    return plain.decode()


def seal_context(session_id: str, handle: str, patient: str, encounter: str | None) -> str:
    """The launch's patient and encounter ids, sealed like the token (their own associated data,
    so a sealed token can never be opened as a context or the other way round)."""
    plain = json.dumps({"patient": patient, "encounter": encounter})
    return seal_token(session_id, f"{handle}|context", plain)


def open_context(session_id: str, handle: str, sealed: str) -> tuple[str, str | None] | None:
    """(patient id, encounter id or None), or None when the session cannot be opened."""
    plain = open_token(session_id, f"{handle}|context", sealed)
    try:
        context = json.loads(plain) if plain is not None else None
    except ValueError:
        return None
    if not isinstance(context, dict) or not isinstance(context.get("patient"), str):
        return None
    encounter = context.get("encounter")
    return context["patient"], encounter if isinstance(encounter, str) else None


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())
