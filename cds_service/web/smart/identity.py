"""Who answers in the SMART app: the ``fhirUser`` of the launch's OpenID Connect id token, kept
only as a keyed pseudonym (``card_feedback.user_pseudonym``), so "one answer per card and user"
can be told apart without a staff identifier in SQL.

The id token comes straight from the EHR's token endpoint over TLS (https outside development),
which OpenID Connect Core 3.1.3.7 accepts in place of checking its signature; it is read only to
group a user's answers, never to grant access. Its audience must be this app. An EHR that sends no
id token (or no ``fhirUser``/``sub``) leaves the user unknown: such answers are grouped per card.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cds_service.security.pseudonym import pseudonym

MAX_ID_TOKEN = 16 * 1024


def _claims(id_token: Any) -> dict[str, Any] | None:
    if not isinstance(id_token, str) or len(id_token) > MAX_ID_TOKEN:
        return None
    parts = id_token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(payload)
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def launch_user(id_token: Any, client_id: str) -> str | None:
    """The user the EHR launched the app for (``fhirUser``, else ``sub``), or None."""
    claims = _claims(id_token)
    if claims is None:
        return None
    aud = claims.get("aud")
    if not (aud == client_id or (isinstance(aud, list) and client_id in aud)):
        return None
    user = claims.get("fhirUser") or claims.get("sub")
    return user if isinstance(user, str) and 0 < len(user) <= 1024 else None


def user_pseudonym(key: bytes, user: str | None) -> str | None:
    return pseudonym(key, "User", user) if user else None
