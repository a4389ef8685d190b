"""Outbound FHIR reads for prefetch keys the EHR did not fill.

Temporary failures (timeouts, 408, 429, 5xx gateway errors) are retried a bounded number of times,
and only while the call's deadline allows (one deadline for every fetch and page of a call, on the
event loop's clock); everything else is final. Paging follows ``next`` links only on the same
origin as the caller's fhirServer, so a hostile server cannot steer the service elsewhere.
Messages name the status and the OperationOutcome codes, never the URL's patient parameters or
the token.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from fhir_mappers.resources import Flattened, flatten, outcome_messages

TEMPORARY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NO_ANSWER_IN_TIME = "FHIR server did not answer in time"


class FhirFetchError(Exception):
    def __init__(self, reason: str, *, temporary: bool = False, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.timed_out = timed_out  # no answer in time: the hook definition says what then


@dataclass(slots=True)
class FetchResult:
    resources: list[dict[str, Any]] = field(default_factory=list)
    full_urls: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_found: bool = False
    pages: int = 0
    truncated: bool = False


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


class FhirClient:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        retries: int = 2,
        max_pages: int = 10,
        max_resources: int = 5000,
        backoff_seconds: float = 0.05,
    ) -> None:
        self._client = client
        self._retries = retries
        self._max_pages = max_pages
        self._max_resources = max_resources
        self._backoff = backoff_seconds

    async def _get(self, url: str, token: str | None, deadline: float | None) -> httpx.Response:
        """One GET, retried while temporary, within ``retries`` and before ``deadline``."""
        headers = {"Accept": "application/fhir+json, application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            error: FhirFetchError | None = None
            try:
                async with asyncio.timeout_at(deadline):
                    response = await self._client.get(url, headers=headers)
            except TimeoutError as exc:  # the call's budget is spent: no retry can help
                raise FhirFetchError(NO_ANSWER_IN_TIME, temporary=True, timed_out=True) from exc
            except httpx.TimeoutException as exc:
                error = FhirFetchError("FHIR server timed out", temporary=True, timed_out=True)
                error.__cause__ = exc
            except httpx.TransportError as exc:
                error = FhirFetchError(
                    f"FHIR server unreachable ({type(exc).__name__})", temporary=True
                )
                error.__cause__ = exc
            except (httpx.RequestError, httpx.InvalidURL) as exc:  # bad encoding, bad URL: final
                raise FhirFetchError(f"FHIR request failed ({type(exc).__name__})") from exc
            else:
                if response.status_code not in TEMPORARY_STATUSES:
                    return response
            pause = self._backoff * 2**attempt
            out_of_time = deadline is not None and loop.time() + pause >= deadline
            if attempt >= self._retries or out_of_time:
                if error is not None:
                    raise error
                return response
            attempt += 1
            await asyncio.sleep(pause)

    async def fetch(
        self, base_url: str, query: str, token: str | None, deadline: float | None = None
    ) -> FetchResult:
        """Run a read or search relative to ``base_url``; follow paging up to the bounds.
        ``deadline`` (``loop.time()`` clock) bounds every request and retry of the fetch."""
        base = base_url.rstrip("/") + "/"
        try:
            url: str | None = urljoin(base, query)
            origin = _origin(base)
        except ValueError as exc:  # e.g. an unbalanced IPv6 bracket
            raise FhirFetchError("fhirServer is not a usable URL") from exc
        result = FetchResult()
        while url is not None:
            response = await self._get(url, token, deadline)
            if response.status_code == 404 and result.pages == 0 and "?" not in query:
                result.not_found = True
                return result
            flat = _page(response)
            result.pages += 1
            result.resources.extend(flat.resources)
            result.full_urls.update(flat.full_urls)
            if len(result.resources) >= self._max_resources:
                result.resources = result.resources[: self._max_resources]
                result.truncated = True
                return result
            url = _next_url(flat.next_links, base, origin)
            if url is not None and result.pages >= self._max_pages:
                result.truncated = True
                return result
        return result


def _http_error(response: httpx.Response) -> FhirFetchError:
    """The status and the OperationOutcome's codes; never the URL or the token."""
    detail = ""
    try:
        body = orjson.loads(response.content)
        if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
            detail = " (" + ", ".join(outcome_messages(body)) + ")"
    except orjson.JSONDecodeError:
        pass
    status = response.status_code
    return FhirFetchError(
        f"FHIR server answered HTTP {status}{detail}", temporary=status in TEMPORARY_STATUSES
    )


def _page(response: httpx.Response) -> Flattened:
    """One page of resources, or the reason there is none."""
    if response.status_code >= 400:
        raise _http_error(response)
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise FhirFetchError("FHIR server sent a body that is not JSON") from exc
    flat = flatten(body)
    if flat.outcomes and not flat.resources:
        messages = [m for o in flat.outcomes for m in outcome_messages(o)]
        raise FhirFetchError("FHIR server sent an OperationOutcome: " + ", ".join(messages))
    return flat


def _next_url(links: list[str], base: str, origin: tuple[str, str]) -> str | None:
    """The next page, only on the caller's own FHIR server."""
    if not links:
        return None
    try:
        url = urljoin(base, links[0])
        foreign = _origin(url) != origin
    except ValueError as exc:
        raise FhirFetchError("FHIR paging link is not a valid URL") from exc
    if foreign:
        raise FhirFetchError("FHIR paging link points to another server")
    return url
