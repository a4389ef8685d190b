"""JwksCache: one key-set cache for the CDS clients' issuers and the dashboard's OIDC provider.

The key server is respx (nothing leaves the process); refresh limits are set to 0 (always) or an
hour (never within a test), so no assertion depends on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest
import respx
from joserfc import jwt

from cds_service.security.jwks import JwksCache, KeyUnavailable, UnknownKeyId
from cds_service.security.local_issuer import generate_key, public_jwks
from cds_service.security.trusted_callers import TrustedIssuer

URL = "https://ehr.example.org/jwks"
T = TypeVar("T")


def run(make: Callable[[JwksCache], Awaitable[T]], **limits: float) -> T:
    async def main() -> T:
        async with httpx.AsyncClient() as http:
            return await make(JwksCache(http, **limits))

    return asyncio.run(main())


def issuer(*, jwks_url: str | None = None, jwks: dict[str, Any] | None = None) -> TrustedIssuer:
    return TrustedIssuer("https://ehr.example.org", jwks_url, jwks, None, ())


def test_keys_are_fetched_once_and_verify_a_token() -> None:
    key = generate_key("ES384", kid="a")
    token = jwt.encode({"alg": "ES384", "kid": "a"}, {"sub": "x"}, key, algorithms=["ES384"])

    async def twice(cache: JwksCache) -> Any:
        await cache.keys_for(issuer(jwks_url=URL), "a")
        return await cache.keys_for(issuer(jwks_url=URL), "a")

    with respx.mock:
        route = respx.get(URL).respond(json=public_jwks(key))
        keys = run(twice, min_refresh_seconds=0)
    assert route.call_count == 1
    assert jwt.decode(token, keys, algorithms=["ES384"]).claims == {"sub": "x"}


def test_an_unknown_kid_refreshes_the_key_set_after_rotation() -> None:
    old, new = generate_key("ES384", kid="old"), generate_key("ES384", kid="new")

    async def rotate(cache: JwksCache) -> Any:
        await cache.keys_for(issuer(jwks_url=URL), "old")
        return await cache.keys_for(issuer(jwks_url=URL), "new")

    with respx.mock:
        route = respx.get(URL)
        route.side_effect = [
            httpx.Response(200, json=public_jwks(old)),
            httpx.Response(200, json=public_jwks(old, new)),
        ]
        keys = run(rotate, min_refresh_seconds=0)
    assert route.call_count == 2
    token = jwt.encode({"alg": "ES384", "kid": "new"}, {"sub": "y"}, new, algorithms=["ES384"])
    assert jwt.decode(token, keys, algorithms=["ES384"]).claims == {"sub": "y"}


def test_unknown_kids_refresh_at_most_once_per_interval() -> None:
    key = generate_key("ES384", kid="a")

    async def forged(cache: JwksCache) -> list[str]:
        await cache.keys_for(issuer(jwks_url=URL), "a")
        errors = []
        for kid in ("random-1", "random-2", "random-3"):
            with pytest.raises(UnknownKeyId) as caught:
                await cache.keys_for(issuer(jwks_url=URL), kid)
            errors.append(str(caught.value))
        return errors

    with respx.mock:
        route = respx.get(URL).respond(json=public_jwks(key))
        errors = run(forged, min_refresh_seconds=3600)
    assert route.call_count == 1  # the first fetch only: no refresh within the hour
    assert errors == ["unknown key id"] * 3


def test_a_failed_refresh_keeps_the_keys_fetched_before() -> None:
    key = generate_key("ES384", kid="a")

    async def later(cache: JwksCache) -> Any:
        await cache.keys_at(URL, "a")
        return await cache.keys_at(URL, "a")  # stale (max age < 0): refetched, and that fails

    with respx.mock:
        route = respx.get(URL)
        route.side_effect = [httpx.Response(200, json=public_jwks(key)), httpx.Response(503)]
        keys = run(later, min_refresh_seconds=0, max_age_seconds=-1)
    assert route.call_count == 2
    assert keys.get_by_kid("a").kid == "a"


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(503), httpx.Response(200, text="not json"), httpx.Response(200, json=[1])],
)
def test_no_key_set_at_all_is_key_unavailable(answer: httpx.Response) -> None:
    with respx.mock:
        respx.get(URL).mock(return_value=answer)
        with pytest.raises(KeyUnavailable) as caught:
            run(lambda cache: cache.keys_for(issuer(jwks_url=URL), "a"))
    assert not isinstance(caught.value, UnknownKeyId)
    assert "key set of issuer unavailable" in str(caught.value)


def test_inline_keys_are_used_without_any_request() -> None:
    key = generate_key("RS384", kid="inline")
    inline = issuer(jwks=public_jwks(key))

    async def both(cache: JwksCache) -> Any:
        keys = await cache.keys_for(inline, "inline")
        with pytest.raises(UnknownKeyId):
            await cache.keys_for(inline, "other")
        return keys

    with respx.mock(assert_all_called=False) as mock:
        keys = run(both)
    assert mock.calls.call_count == 0
    assert keys.get_by_kid("inline").kid == "inline"


def test_private_key_material_is_never_imported() -> None:
    private = generate_key("ES384", kid="secret")
    public = generate_key("ES384", kid="public")
    leaked = {"keys": [private.as_dict(private=True), public.as_dict(private=False)]}

    with respx.mock:
        respx.get(URL).respond(json=leaked)
        with pytest.raises(UnknownKeyId):
            run(lambda cache: cache.keys_at(URL, "secret"))


def test_a_token_without_kid_gets_the_whole_set() -> None:
    a, b = generate_key("ES384", kid="a"), generate_key("ES384", kid="b")
    with respx.mock:
        respx.get(URL).respond(json=public_jwks(a, b))
        keys = run(lambda cache: cache.keys_at(URL, None))
    assert {k.kid for k in keys.keys} == {"a", "b"}
