"""Database calls on the request path: off the event loop, within a short budget, and skipped
while the database is known to be away.

A call that exceeds its budget is abandoned (its worker thread finishes or fails on its own) and
the caller falls back (the audit row to the spool, the jti to memory). After the first failure
the database is marked down, so later calls fall back at once instead of each paying the budget;
the background loop marks it up again once a spool replay and a probe succeed. Readiness
(``/readyz``) reads the same flag (and the shared spool folder), never the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("cds_service.db.health")
T = TypeVar("T")
# The browser flows' lookups (dashboard and SMART app sessions): a person waits longer than an
# EHR's hook call does, but never for as long as a stalled database would hold them.
WEB_BUDGET_SECONDS = 2.0


class DatabaseUnavailable(Exception):
    """The database did not answer within the budget, failed, or is marked down."""


class DatabaseHealth:
    def __init__(self, budget_seconds: float) -> None:
        self.budget_seconds = budget_seconds
        self._down_since: float | None = None
        self._lock = threading.Lock()

    @property
    def available(self) -> bool:
        return self._down_since is None

    def mark_down(self, reason: str) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("database marked unavailable (%s): writes go to the spool", reason)

    def mark_up(self) -> None:
        with self._lock:
            if self._down_since is not None:
                away = time.monotonic() - self._down_since
                self._down_since = None
                log.info("database available again after %.1f s", away)

    async def call(self, work: Callable[[], T], budget_seconds: float | None = None) -> T:
        """``work()`` in a worker thread within the budget (this object's, unless the caller
        names its own); raises DatabaseUnavailable when the database is marked down, fails, or
        does not answer in time (``work`` then keeps running in its thread and its result is
        dropped)."""
        if not self.available:
            raise DatabaseUnavailable("marked down")
        try:
            with anyio.fail_after(budget_seconds or self.budget_seconds):
                return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except TimeoutError:
            self.mark_down("no answer within the budget")
            raise DatabaseUnavailable("budget exceeded") from None
        except SQLAlchemyError as exc:
            self.mark_down(type(exc).__name__)
            raise DatabaseUnavailable(type(exc).__name__) from None

    def probe(self, engine: Engine) -> bool:
        """A blocking round trip (background threads only) that sets the flag either way."""
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except SQLAlchemyError as exc:
            self.mark_down(type(exc).__name__)
            return False
        self.mark_up()
        return True


__all__ = ["WEB_BUDGET_SECONDS", "DatabaseHealth", "DatabaseUnavailable"]
