"""A real FHIR server on loopback that stalls: every request waits up to ``stall`` seconds (or
until released) before answering an empty searchset. For the fallback's time budget."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.utils.server import ServerThread


class SlowFhir:
    def __init__(self, stall: float = 20.0) -> None:
        self.stall = stall
        self.release = threading.Event()
        self.hits: list[str] = []  # paths asked for (no query: that names the patient)

        async def answer(request: Request) -> JSONResponse:
            self.hits.append(request.url.path)
            until = time.monotonic() + self.stall
            while not self.release.is_set() and time.monotonic() < until:
                await asyncio.sleep(0.05)
            return JSONResponse({"resourceType": "Bundle", "type": "searchset", "entry": []})

        self.app = Starlette(routes=[Route("/fhir/{path:path}", answer)])


@contextmanager
def slow_fhir_server(stall: float = 20.0) -> Iterator[tuple[SlowFhir, str]]:
    """The stalling server and its FHIR base URL; stalls end when the block ends."""
    fhir = SlowFhir(stall)
    with ServerThread(fhir.app) as server:
        try:
            yield fhir, f"{server.url}/fhir"
        finally:
            fhir.release.set()
