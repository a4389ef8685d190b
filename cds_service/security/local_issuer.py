"""Client-side JWT signing, for the quick-start CLI, the benchmarks and the simulator.

A real EHR signs its own tokens; this module plays that part with a local key so that a newcomer
sees a card with security on, and so that tests exercise the real verification path.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

from joserfc import jwk, jwt
from joserfc.jwk import KeyParameters

from cds_service.paths import data_dir

LOCAL_ISSUER = "urn:cds-risk:local-ehr"


def local_key_path() -> Path:
    """The quick start's private key (``keys init``, or a first ``serve`` in development)."""
    return data_dir() / "keys" / "local-signing-key.json"


def local_issuer_path() -> Path:
    return data_dir() / "keys" / "local-issuer.txt"


def configured_local_issuer() -> str:
    """The issuer the local key was registered under (default: the built-in one)."""
    path = local_issuer_path()
    return path.read_text(encoding="utf-8").strip() if path.is_file() else LOCAL_ISSUER


def generate_key(alg: str = "ES384", kid: str | None = None) -> jwk.Key:
    kid = kid or uuid.uuid4().hex[:16]
    params: KeyParameters = {"kid": kid, "alg": alg, "use": "sig"}
    if alg.startswith("ES"):
        curve = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}[alg]
        return jwk.ECKey.generate_key(curve, parameters=params)
    return jwk.RSAKey.generate_key(2048, parameters=params)


def public_jwks(*keys: jwk.Key) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=False) for k in keys]}


def sign(
    key: jwk.Key,
    *,
    iss: str,
    aud: str | list[str],
    lifetime: int = 300,
    now: float | None = None,
    alg: str | None = None,
    header: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    issued = int(now if now is not None else time.time())
    algorithm = alg or str(key.as_dict().get("alg", "ES384"))
    head = {"alg": algorithm, "typ": "JWT", "kid": key.kid}
    head.update(header or {})
    body: dict[str, Any] = {
        "iss": iss,
        "aud": aud,
        "iat": issued,
        "exp": issued + lifetime,
        "jti": uuid.uuid4().hex,
    }
    body.update(claims)
    return jwt.encode(head, body, key, algorithms=[algorithm])


def save_private_key(key: jwk.Key, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(key.as_dict(private=True), handle)


def load_private_key(path: Path) -> jwk.Key:
    return jwk.import_key(json.loads(path.read_text(encoding="utf-8")))
