"""Background loops of a replica: one failure is logged and retried, never the end of the loop."""

from __future__ import annotations

import anyio
import pytest

from cds_service.background import _every


def test_a_failing_round_does_not_stop_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []

    async def main() -> None:
        stop = anyio.Event()

        async def work() -> None:
            rounds.append(len(rounds))
            if len(rounds) == 1:
                raise FileNotFoundError("spool file taken by another worker")
            if len(rounds) == 3:
                stop.set()

        with anyio.fail_after(5):
            await _every(0.01, stop, work)

    anyio.run(main)
    assert rounds == [0, 1, 2]
    assert "background task failed, retried next round: FileNotFoundError" in caplog.text


def test_the_interval_is_read_before_every_wait() -> None:
    """The replay loop waits less while the database is marked away (it reads its interval
    each round), so a worker sees the end of an outage within about a second."""
    import time

    intervals = [30.0, 0.01, 0.01]  # popped from the end: two short waits, one per round
    rounds: list[float] = []

    async def main() -> None:
        stop = anyio.Event()

        def interval() -> float:
            return intervals.pop() if intervals else 30.0

        async def work() -> None:
            rounds.append(time.monotonic())
            if len(rounds) == 2:
                stop.set()

        with anyio.fail_after(10):
            await _every(interval, stop, work)

    anyio.run(main)
    assert len(rounds) == 2 and intervals == [30.0]
