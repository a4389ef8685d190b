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
