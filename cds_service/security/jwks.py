"""JWK Sets of trusted parties, one cache for both users: the CDS clients' issuers (inline keys or
a configured key URL) and the dashboard's OpenID Connect provider (its ``jwks_uri``).

An unknown ``kid`` triggers one refresh (key rotation), but at most once per
``min_refresh_seconds`` per key URL, so forged tokens with random key ids cannot make the service
hammer a key endpoint. When a refresh fails, the keys fetched before stay in use.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from cds_service.security.trusted_callers import TrustedIssuer

__all__ = ["JwksCache", "KeyUnavailable", "UnknownKeyId"]


class KeyUnavailable(Exception):
    """No key to verify with: the key set could not be fetched or read, or lacks the key id."""


class UnknownKeyId(KeyUnavailable):
    """The key set was read but has no key with the token's ``kid``."""


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
    """Per process, only a cache: every replica fetches the same public keys itself."""

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

    async def keys_for(self, issuer: TrustedIssuer, kid: str) -> KeySet:
        """The keys of a CDS client's issuer that hold ``kid``."""
        if issuer.jwks is None:
            assert issuer.jwks_url is not None
            return await self.keys_at(issuer.jwks_url, kid)
        inline = self._inline.get(issuer.iss)
        if inline is None:  # configured keys never change while the process runs
            inline = self._inline[issuer.iss] = _key_set(issuer.jwks)
        keys, kids = inline
        if kid not in kids:
            raise UnknownKeyId("unknown key id")
        return keys

    async def keys_at(self, url: str, kid: str | None) -> KeySet:
        """The key set published at ``url``; with a ``kid``, one that holds it. ``None`` (a token
        without ``kid``) takes the set as cached: the signature check picks the key."""
        async with self._lock:
            entry = self._entries.get(url)
            now = time.monotonic()
            stale = entry is None or now - entry.fetched_at > self._max_age
            unknown = entry is not None and kid is not None and kid not in entry.kids
            may_refresh = now - self._last_attempt.get(url, -1e9) >= self._min_refresh
            if stale or (unknown and may_refresh):
                try:
                    entry = await self._fetch(url)
                except KeyUnavailable:
                    if entry is None:
                        raise
            assert entry is not None
            if kid is not None and kid not in entry.kids:
                raise UnknownKeyId("unknown key id")
            return entry.keys

    async def _fetch(self, url: str) -> _Entry:
        self._last_attempt[url] = time.monotonic()
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            keys, kids = _key_set(response.json())
        except (httpx.HTTPError, JoseError, ValueError, TypeError, AttributeError) as exc:
            raise KeyUnavailable(f"key set of issuer unavailable ({type(exc).__name__})") from exc
        entry = _Entry(keys, kids, time.monotonic())
        self._entries[url] = entry
        return entry
