"""Trusted CDS clients (``CDS_TRUSTED_ISSUERS``): who may call, with which keys, for which FHIR
servers.

File format: a JSON list of objects ``{"iss", "jwks_url" | "jwks", "tenant"?, "fhir_servers"}``.
The file is read at start-up (reload = restart); an invalid file stops the service with a message
that names the entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class TrustedCallersError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    iss: str
    jwks_url: str | None
    jwks: dict[str, Any] | None
    tenant: str | None
    fhir_servers: tuple[str, ...]

    def allows_fhir_server(self, url: str) -> bool:
        return normalize_base(url) in self.fhir_servers


def normalize_base(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


_KEYS = {"iss", "jwks_url", "jwks", "tenant", "fhir_servers", "comment"}


def _key_source(entry: dict[str, Any], at: str) -> tuple[str | None, dict[str, Any] | None]:
    """Exactly one of a key URL and an inline public JWK Set."""
    jwks_url, jwks = entry.get("jwks_url"), entry.get("jwks")
    if (jwks_url is None) == (jwks is None):
        raise TrustedCallersError(f"{at}: give exactly one of 'jwks_url' and 'jwks'")
    if jwks_url is not None and not (
        isinstance(jwks_url, str) and jwks_url.startswith(("https://", "http://"))
    ):
        raise TrustedCallersError(f"{at}: 'jwks_url' must be an http(s) URL")
    if jwks is not None and not (isinstance(jwks, dict) and isinstance(jwks.get("keys"), list)):
        raise TrustedCallersError(f"{at}: 'jwks' must be a JWK Set with 'keys'")
    if jwks is not None and any("d" in k for k in jwks["keys"] if isinstance(k, dict)):
        raise TrustedCallersError(f"{at}: 'jwks' holds a private key; publish only public keys")
    return jwks_url, jwks


def _issuer(entry: Any, at: str) -> TrustedIssuer:
    if not isinstance(entry, dict):
        raise TrustedCallersError(f"{at}: must be an object")
    unknown = set(entry) - _KEYS
    if unknown:
        raise TrustedCallersError(f"{at}: unknown keys {sorted(unknown)}")
    iss = entry.get("iss")
    if not isinstance(iss, str) or not iss:
        raise TrustedCallersError(f"{at}: 'iss' is required")
    named = f"{at} ({iss})"
    jwks_url, jwks = _key_source(entry, named)
    servers = entry.get("fhir_servers", [])
    if not isinstance(servers, list) or not all(isinstance(s, str) for s in servers):
        raise TrustedCallersError(f"{named}: 'fhir_servers' must be a list of URLs")
    tenant = entry.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        raise TrustedCallersError(f"{named}: 'tenant' must be a string")
    return TrustedIssuer(
        iss=iss,
        jwks_url=jwks_url,
        jwks=jwks,
        tenant=tenant,
        fhir_servers=tuple(normalize_base(s) for s in servers),
    )


def parse_trusted_callers(doc: Any, where: str = "trusted callers") -> dict[str, TrustedIssuer]:
    """Issuers by ``iss``; the first problem stops start-up with a message naming the entry."""
    if not isinstance(doc, list):
        raise TrustedCallersError(f"{where}: must be a JSON list of issuer objects")
    out: dict[str, TrustedIssuer] = {}
    for i, entry in enumerate(doc):
        issuer = _issuer(entry, f"{where}[{i}]")
        if issuer.iss in out:
            raise TrustedCallersError(f"{where}[{i}]: issuer {issuer.iss} is listed twice")
        out[issuer.iss] = issuer
    return out


def load_trusted_callers(path: Path) -> dict[str, TrustedIssuer]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrustedCallersError(f"{path}: cannot read: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise TrustedCallersError(f"{path}: not valid JSON (line {exc.lineno})") from exc
    return parse_trusted_callers(doc, str(path))
