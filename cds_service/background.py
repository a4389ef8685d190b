"""Work a running replica does besides answering calls: replaying the audit spool, picking up
promotions, recording a change of site terminology in the deployment trail, purging expired
token ids and sessions, and (when configured) monitoring.

Each loop sleeps until its interval passes or the service stops; none of them may stop the
service by failing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio
from anyio.abc import TaskGroup
from sqlalchemy.engine import Engine

from cds_service.state import ServiceState

log = logging.getLogger("cds_service")
PURGE_SECONDS = 300
DOWN_RETRY_SECONDS = 1.0


async def _every(
    seconds: float | Callable[[], float],
    stop: anyio.Event,
    work: Callable[[], Awaitable[None]],
) -> None:
    """Run ``work`` every ``seconds`` (a number, or read before each wait) until stopped; a
    failure is logged and the loop goes on, so one loop's error never stops the others (they
    share the lifespan's task group)."""
    while not stop.is_set():
        with anyio.move_on_after(seconds() if callable(seconds) else seconds):
            await stop.wait()
        if stop.is_set():
            break
        try:
            await work()
        except Exception as exc:
            log.error("background task failed, retried next round: %s", type(exc).__name__)


def start_background(tg: TaskGroup, st: ServiceState, engine: Engine, stop: anyio.Event) -> None:
    settings = st.settings
    env = settings.environment.value
    replay = _ReplayAndPurge(st)
    tg.start_soon(_every, replay.interval, stop, replay)

    trail = _TerminologyTrail(st, engine)
    tg.start_soon(trail)

    async def refresh_deployments() -> None:
        await anyio.to_thread.run_sync(st.registry.refresh_deployments, engine, env)
        await trail()

    tg.start_soon(_every, settings.deployment_refresh_seconds, stop, refresh_deployments)
    if settings.monitor_interval_seconds > 0:
        tg.start_soon(_every, settings.monitor_interval_seconds, stop, _Monitor(st, engine))


class _ReplayAndPurge:
    """Spooled audit rows back into the database; every few minutes, expired jti and sessions."""

    def __init__(self, st: ServiceState) -> None:
        self._st = st
        self._last_purge = time.monotonic()

    def interval(self) -> float:
        """The replay interval; while the database is marked down, at most DOWN_RETRY_SECONDS,
        so that this worker sees the end of an outage (and stops spooling, and /readyz says
        ready) within about a second rather than a whole interval later."""
        every = self._st.settings.spool_replay_seconds
        return every if self._st.writer.health.available else min(every, DOWN_RETRY_SECONDS)

    async def __call__(self) -> None:
        st = self._st
        writer = st.writer
        if not writer.health.available or writer.spool.pending_files():
            # blocks its worker thread (not the loop) for as long as a stalled database does
            await anyio.to_thread.run_sync(writer.heal)
        if time.monotonic() - self._last_purge <= PURGE_SECONDS:
            return
        self._last_purge = time.monotonic()
        if st.authenticator is not None:
            await anyio.to_thread.run_sync(st.authenticator.purge_expired)
        if st.sessions is not None:
            await anyio.to_thread.run_sync(st.sessions.purge)


class _TerminologyTrail:
    """Record the site terminology this replica serves with once the database answers (start-up
    never waits for it); the check and the append share the deployments lock."""

    def __init__(self, st: ServiceState, engine: Engine) -> None:
        self._st = st
        self._engine = engine
        self._done = False

    async def __call__(self) -> None:
        from cds_service.lifecycle.site_terminology import (
            RECORDED_ENVIRONMENTS,
            operator_name,
            record_site_terminology,
        )

        if self._done:
            return
        settings = self._st.settings
        try:
            appended = await anyio.to_thread.run_sync(
                record_site_terminology,
                self._engine,
                settings.environment.value,
                self._st.registry.site,
                operator_name(settings.operator),
            )
        except Exception as exc:  # database away; runs outside _every at start, so never raise
            log.warning("site terminology not recorded yet, retried (%s)", type(exc).__name__)
            return
        self._done = True
        self._st.registry.site_trail = (
            "checked" if settings.environment.value in RECORDED_ENVIRONMENTS else "not kept here"
        )
        if appended:
            log.info("site terminology %s recorded", self._st.registry.site.sha256[:12])


class _Monitor:
    """Scheduled monitoring; one replica at a time (the lock is inside ``run_recent``)."""

    def __init__(self, st: ServiceState, engine: Engine) -> None:
        self._models_dir = st.settings.models_dir
        self._engine = engine
        # _every waits the interval after a run ends, so this replica's own next tick always
        # finds its last run at least an interval old; another replica's recent run skips it.
        self._min_interval = timedelta(seconds=st.settings.monitor_interval_seconds)

    def _run(self) -> None:
        # Imported here, in the worker thread: the first run loads SciPy and scikit-learn
        # (~1 s, more on a busy host), which on the event loop would stall every call and the
        # readiness probe (a balancer then takes all replicas out at once).
        from cds_service.monitoring import run_recent

        run_recent(
            self._engine,
            self._models_dir,
            days=7,
            window_hours=24,
            min_interval=self._min_interval,
        )

    async def __call__(self) -> None:
        try:
            await anyio.to_thread.run_sync(self._run)
        except Exception as exc:  # monitoring must never stop the service
            log.error("scheduled monitoring failed: %s", type(exc).__name__)
