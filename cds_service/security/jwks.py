"""JWK Sets of trusted issuers: inline, or fetched from the issuer's configured URL and cached.

An unknown ``kid`` triggers one refresh (key rotation), but at most once per
``min_refresh_seconds`` per issuer, so forged tokens with random key ids cannot make the service
hammer the issuer's key endpoint.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.jwk import KeySet

from cds_service.security.trusted_callers import TrustedIssuer


class KeyUnavailable(Exception):
    pass


@dataclass(slots=True)
class _Entry:
    keys: KeySet
    kids: frozenset[str]
    fetched_at: float


def _key_set(doc: Any) -> tuple[KeySet, frozenset[str]]:
    keys = [k for k in doc.get("keys", []) if isinstance(k, dict) and "d" not in k]
    key_set = KeySet.import_key_set({"keys": keys})
    return key_set, frozenset(str(k.get("kid")) for k in keys if k.get("kid"))


class JwksCache:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        min_refresh_seconds: float = 30.0,
        max_age_seconds: float = 3600.0,
    ) -> None:
        self._http = http
        self._min_refresh = min_refresh_seconds
        self._max_age = max_age_seconds
        self._entries: dict[str, _Entry] = {}
        self._inline: dict[str, tuple[KeySet, frozenset[str]]] = {}
        self._last_attempt: dict[str, float] = {}
        self._lock = asyncio.Lock()

    async def _fetch(self, issuer: TrustedIssuer) -> _Entry:
        assert issuer.jwks_url is not None
        self._last_attempt[issuer.iss] = time.monotonic()
        try:
            response = await self._http.get(issuer.jwks_url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys, kids = _key_set(response.json())
        except (httpx.HTTPError, ValueError, TypeError, AttributeError) as exc:
            raise KeyUnavailable(f"key set of issuer unavailable ({type(exc).__name__})") from exc
        entry = _Entry(keys, kids, time.monotonic())
        self._entries[issuer.iss] = entry
        return entry

    async def keys_for(self, issuer: TrustedIssuer, kid: str) -> KeySet:
        if issuer.jwks is not None:
            inline = self._inline.get(issuer.iss)
            if inline is None:  # configured keys never change while the process runs
                inline = self._inline[issuer.iss] = _key_set(issuer.jwks)
            keys, kids = inline
            if kid not in kids:
                raise KeyUnavailable("unknown key id")
            return keys
        async with self._lock:
            entry = self._entries.get(issuer.iss)
            now = time.monotonic()
            stale = entry is None or now - entry.fetched_at > self._max_age
            unknown = entry is not None and kid not in entry.kids
            may_refresh = now - self._last_attempt.get(issuer.iss, -1e9) >= self._min_refresh
            if stale or (unknown and may_refresh):
                try:
                    entry = await self._fetch(issuer)
                except KeyUnavailable:
                    if entry is None:
                        raise
            assert entry is not None
            if kid not in entry.kids:
                raise KeyUnavailable("unknown key id")
            return entry.keys
