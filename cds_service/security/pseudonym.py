"""Keyed pseudonyms for audit rows: stable per patient, meaningless without the key."""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(key: bytes, kind: str, identifier: str) -> str:
    """HMAC-SHA256 over kind and id, so a patient and an encounter with equal ids differ."""
    return hmac.new(key, f"{kind}\0{identifier}".encode(), hashlib.sha256).hexdigest()
