"""A small but real SMART on FHIR EHR for the tests, served over HTTP on loopback.

- SMART App Launch 2.x authorization server: ``/fhir/.well-known/smart-configuration``,
  ``/auth/authorize`` (checks client_id, the registered redirect_uri, response_type, state, the
  launch id, the ``launch`` scope, ``aud`` = the FHIR base, and a PKCE S256 challenge, then
  redirects back with code and state) and ``/auth/token`` (single-use codes, HTTP Basic for
  confidential clients or ``client_id`` for public ones, the S256 ``code_verifier``; answers
  with access_token, expires_in, scope, patient, encounter, appContext, and an OpenID Connect
  ``id_token`` (RS256, with ``fhirUser``) when the scope has ``openid`` and the launch a user).
- FHIR R4 read and search (``Patient/{id}``, ``Observation``, ``Encounter``, ``Condition`` with
  ``patient``, ``date``, ``code``, ``_count`` and paging) that requires a live bearer token and
  serves only the token's patient.

Every request the app makes is recorded so tests can check it against the specification.
(sekmet-fhir was considered: its authorization endpoint does not implement the authorization code
flow, so it cannot drive an EHR launch.)
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.utils.fhir_search import date_matches
from tests.utils.server import ServerThread

FHIR_JSON = "application/fhir+json"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Client:
    redirect_uris: list[str]
    secret: str | None = None


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    context: dict[str, Any]
    expires_at: float
    user: str | None = None


@dataclass
class Token:
    patient: str
    scope: str
    expires_at: float


@dataclass
class Recorded:
    authorize: list[dict[str, str]] = field(default_factory=list)
    token: list[dict[str, Any]] = field(default_factory=list)
    fhir: list[dict[str, Any]] = field(default_factory=list)
    discovery: int = 0


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _outcome(status: int, code: str, text: str) -> JSONResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


def _time(resource: dict[str, Any]) -> datetime | None:
    raw = resource.get("effectiveDateTime")
    if raw is None and isinstance(resource.get("period"), dict):
        raw = resource["period"].get("start")
    if raw is None:
        raw = resource.get("onsetDateTime")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else None


def _codes(resource: dict[str, Any]) -> set[str]:
    out = set()
    for coding in (resource.get("code") or {}).get("coding", []):
        out.add(f"{coding.get('system', '')}|{coding.get('code', '')}")
        out.add(str(coding.get("code", "")))
    return out


class SmartEhr:
    """The EHR side of a SMART launch: authorization server + FHIR server, on loopback."""

    def __init__(self, *, expires_in: int = 3600) -> None:
        self.clients: dict[str, Client] = {}
        self.launches: dict[str, dict[str, Any]] = {}
        self.grants: dict[str, Grant] = {}
        self.tokens: dict[str, Token] = {}
        self.tokens_issued: list[str] = []
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.expires_in = expires_in
        self.smart_configuration_extra: dict[str, Any] = {}
        self.recorded = Recorded()
        self.launch_users: dict[str, str] = {}
        self.signing_key = RSAKey.generate_key(2048)
        self.server = ServerThread(self._build())

    # -- set-up -----------------------------------------------------------------------------

    @property
    def base(self) -> str:
        return self.server.url

    @property
    def fhir_base(self) -> str:
        return f"{self.server.url}/fhir"

    def register(self, client_id: str, redirect_uri: str, secret: str | None = None) -> None:
        self.clients[client_id] = Client([redirect_uri], secret)

    def add_launch(
        self,
        patient: str,
        *,
        encounter: str | None = None,
        app_context: str | None = None,
        user: str | None = None,
        **extra: Any,
    ) -> str:
        """A launch; ``user`` is the clinician's ``fhirUser`` (e.g. ``Practitioner/x``)."""
        launch = secrets.token_urlsafe(12)
        context: dict[str, Any] = {"patient": patient, "need_patient_banner": False}
        if user:
            self.launch_users[launch] = user
        if encounter:
            context["encounter"] = encounter
        if app_context is not None:
            context["appContext"] = app_context
        context.update(extra)
        self.launches[launch] = context
        return launch

    def load(self, *resources: dict[str, Any]) -> None:
        for res in resources:
            self.resources.setdefault(res["resourceType"], {})[res["id"]] = res

    def revoke_all(self) -> None:
        self.tokens.clear()

    def id_token(self, client_id: str, user: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.base,
            "sub": user.rsplit("/", 1)[-1],
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "fhirUser": f"{self.fhir_base}/{user}",
        }
        return jwt.encode({"alg": "RS256"}, claims, self.signing_key)

    def __enter__(self) -> SmartEhr:
        self.server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(*exc)

    # -- the HTTP application -----------------------------------------------------------------

    def _build(self) -> FastAPI:
        app = FastAPI()
        ehr = self

        @app.get("/fhir/.well-known/smart-configuration")
        async def smart_configuration() -> Response:
            ehr.recorded.discovery += 1
            doc = {
                "issuer": ehr.base,
                "authorization_endpoint": f"{ehr.base}/auth/authorize",
                "token_endpoint": f"{ehr.base}/auth/token",
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"],
                "grant_types_supported": ["authorization_code"],
                "scopes_supported": ["launch", "openid", "fhirUser", "patient/*.read"],
                "response_types_supported": ["code"],
                "capabilities": [
                    "launch-ehr",
                    "client-public",
                    "client-confidential-symmetric",
                    "context-ehr-patient",
                    "context-ehr-encounter",
                    "permission-patient",
                    "permission-v1",
                    "permission-v2",
                ],
                "code_challenge_methods_supported": ["S256"],
            }
            doc.update(ehr.smart_configuration_extra)
            return JSONResponse(doc)

        @app.api_route("/auth/authorize", methods=["GET", "POST"])
        async def authorize(request: Request) -> Response:
            params = dict(request.query_params)
            if request.method == "POST":
                body = (await request.body()).decode()
                params.update({k: v[0] for k, v in parse_qs(body).items()})
            ehr.recorded.authorize.append(params)
            client = ehr.clients.get(params.get("client_id", ""))
            if client is None:
                return HTMLResponse("unknown client_id", status_code=400)
            redirect = params.get("redirect_uri", "")
            if redirect not in client.redirect_uris:
                return HTMLResponse("redirect_uri is not registered", status_code=400)

            def back(**values: str) -> Response:
                if params.get("state"):
                    values["state"] = params["state"]
                return RedirectResponse(f"{redirect}?{urlencode(values)}", status_code=302)

            if params.get("response_type") != "code":
                return back(error="unsupported_response_type")
            if not params.get("state"):
                return back(error="invalid_request", error_description="state missing")
            if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
                return back(error="invalid_request", error_description="PKCE S256 required")
            if params.get("aud", "").rstrip("/") != ehr.fhir_base:
                return back(error="invalid_request", error_description="aud is not this server")
            scopes = params.get("scope", "").split()
            if "launch" not in scopes:
                return back(error="invalid_scope", error_description="launch scope missing")
            context = ehr.launches.get(params.get("launch", ""))
            if context is None:
                return back(error="invalid_request", error_description="unknown launch")
            code = secrets.token_urlsafe(24)
            ehr.grants[code] = Grant(
                client_id=params["client_id"],
                redirect_uri=redirect,
                challenge=params["code_challenge"],
                scope=" ".join(scopes),
                context=context,
                expires_at=time.time() + 60,
                user=ehr.launch_users.get(params.get("launch", "")),
            )
            return back(code=code)

        @app.post("/auth/token")
        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            auth = request.headers.get("authorization", "")
            ehr.recorded.token.append({"form": dict(form), "basic": auth.startswith("Basic ")})

            def fail(error: str, status: int = 400) -> Response:
                return JSONResponse(
                    {"error": error},
                    status_code=status,
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
                )

            if form.get("grant_type") != "authorization_code":
                return fail("unsupported_grant_type")
            if auth.startswith("Basic "):
                raw = base64.b64decode(auth[6:]).decode()
                client_id, _, secret = raw.partition(":")
                client_id, secret = unquote(client_id), unquote(secret)
                client = ehr.clients.get(client_id)
                if client is None or client.secret is None or client.secret != secret:
                    return fail("invalid_client", 401)
            else:
                client_id = form.get("client_id", "")
                client = ehr.clients.get(client_id)
                if client is None or client.secret is not None:
                    return fail("invalid_client", 401)
            grant = ehr.grants.pop(form.get("code", ""), None)
            if grant is None or grant.expires_at < time.time() or grant.client_id != client_id:
                return fail("invalid_grant")
            if form.get("redirect_uri") != grant.redirect_uri:
                return fail("invalid_grant")
            verifier = form.get("code_verifier")
            if not verifier or _s256(verifier) != grant.challenge:
                return fail("invalid_grant")
            access = secrets.token_urlsafe(32)
            ehr.tokens_issued.append(access)
            ehr.tokens[access] = Token(
                patient=grant.context["patient"],
                scope=grant.scope,
                expires_at=time.time() + ehr.expires_in,
            )
            body = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": ehr.expires_in,
                "scope": grant.scope,
                **grant.context,
            }
            if grant.user and "openid" in grant.scope.split():
                body["id_token"] = ehr.id_token(client_id, grant.user)
            return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

        def bearer(request: Request) -> Token | None:
            auth = request.headers.get("authorization", "")
            found = ehr.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
            if found is None or found.expires_at < time.time():
                return None
            return found

        def record(request: Request) -> None:
            ehr.recorded.fhir.append(
                {
                    "path": request.url.path,
                    "query": str(request.url.query),
                    "authorization": request.headers.get("authorization", ""),
                }
            )

        @app.get("/fhir/Patient/{pid}")
        async def read_patient(pid: str, request: Request) -> Response:
            record(request)
            tok = bearer(request)
            if tok is None:
                return _outcome(401, "login", "bearer token missing, unknown or expired")
            if tok.patient != pid:
                return _outcome(403, "forbidden", "not the patient in context")
            res = ehr.resources.get("Patient", {}).get(pid)
            if res is None:
                return _outcome(404, "not-found", "no such patient")
            return JSONResponse(res, media_type=FHIR_JSON)

        @app.get("/fhir/{rtype}")
        async def search(rtype: str, request: Request) -> Response:
            record(request)
            tok = bearer(request)
            if tok is None:
                return _outcome(401, "login", "bearer token missing, unknown or expired")
            if rtype not in ("Observation", "Encounter", "Condition"):
                return _outcome(404, "not-supported", "resource type not served")
            query = request.query_params
            patient = (query.get("patient") or query.get("subject") or "").removeprefix("Patient/")
            if patient != tok.patient:
                return _outcome(403, "forbidden", "searches must name the patient in context")
            matches = [
                r
                for r in ehr.resources.get(rtype, {}).values()
                if r.get("subject", {}).get("reference") == f"Patient/{patient}"
            ]
            for spec in query.getlist("date"):
                matches = [r for r in matches if date_matches(_time(r), spec)]
            codes = query.get("code")
            if codes:
                wanted = set(codes.split(","))
                matches = [r for r in matches if _codes(r) & wanted]
            matches.sort(key=lambda r: (_time(r) or EPOCH).isoformat(), reverse=True)
            count = max(1, min(int(query.get("_count", "50")), 500))
            offset = int(query.get("_getpagesoffset", "0"))
            page = matches[offset : offset + count]
            bundle: dict[str, Any] = {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matches),
                "link": [{"relation": "self", "url": str(request.url)}],
                "entry": [
                    {"fullUrl": f"{ehr.fhir_base}/{rtype}/{r['id']}", "resource": r} for r in page
                ],
            }
            if offset + count < len(matches):
                params = [(k, v) for k, v in query.multi_items() if k != "_getpagesoffset"]
                params.append(("_getpagesoffset", str(offset + count)))
                bundle["link"].append(
                    {"relation": "next", "url": f"{ehr.fhir_base}/{rtype}?{urlencode(params)}"}
                )
            return JSONResponse(bundle, media_type=FHIR_JSON)

        return app
