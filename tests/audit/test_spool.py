"""The audit spool shared by several worker processes: no acknowledged row is lost or replayed
twice while processes append and replay at the same time, and a replay never fails on a file
another process has taken."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds_service.audit.spool import Spool

STRESS_SECONDS = 3.0


def _appender(directory: str, acked: str, seconds: float) -> None:
    """Append rows and record each one only after ``append`` returned (it was fsynced)."""
    spool = Spool(Path(directory))
    deadline = time.monotonic() + seconds
    n = 0
    with open(acked, "ab") as out:
        while time.monotonic() < deadline:
            row_id = f"{os.getpid()}-{n}"
            spool.append("card_audit", {"card_uuid": row_id})
            out.write(row_id.encode() + b"\n")
            out.flush()
            n += 1


def _sink_writer(sink: Path) -> Any:
    """A ``write`` for the spool that appends row ids to a file: the stand-in for the database."""

    def write(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with sink.open("ab") as out:
            for row in rows:
                out.write(row["card_uuid"].encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        return []

    return write


def _replayer(directory: str, sink: str, seconds: float) -> None:
    """Replay as fast as possible while the appenders run."""
    spool = Spool(Path(directory))
    write = _sink_writer(Path(sink))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        spool.replay(write)


def _lines(paths: list[Path]) -> list[str]:
    return [line for p in paths if p.exists() for line in p.read_text().splitlines() if line]


def test_concurrent_append_and_replay_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "spool"
    directory.mkdir()
    ctx = multiprocessing.get_context("fork")
    acked = [tmp_path / f"acked-{i}" for i in range(2)]
    sinks = [tmp_path / f"sink-{i}" for i in range(2)]
    procs = [
        ctx.Process(target=_appender, args=(str(directory), str(a), STRESS_SECONDS)) for a in acked
    ] + [
        ctx.Process(target=_replayer, args=(str(directory), str(s), STRESS_SECONDS + 0.5))
        for s in sinks
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0, "a spool process failed"
    # What the replayers left behind (rows appended after their last round) is replayed here.
    final_sink = tmp_path / "sink-final"
    Spool(directory).replay(_sink_writer(final_sink))
    written = _lines([*sinks, final_sink])
    sent = _lines(acked)
    assert len(sent) > 100, "the stress produced too few rows to mean anything"
    assert set(sent) - set(written) == set(), "acknowledged rows lost"
    assert len(written) == len(set(written)), "rows replayed twice"
    assert not list(directory.glob("*.jsonl")), "spool files left behind"


def test_replay_skips_a_file_another_process_holds(tmp_path: Path) -> None:
    import fcntl

    spool = Spool(tmp_path)
    spool.append("card_audit", {"card_uuid": "held"})
    [path] = spool.pending_files()
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as another worker's replay would
    try:
        seen: list[Any] = []
        assert spool.replay(lambda table, rows: seen.extend(rows) or []) == 0
        assert seen == [] and path.exists()
    finally:
        os.close(fd)
    assert spool.replay(lambda table, rows: []) == 1
    assert spool.pending_files() == []


def test_a_failed_replay_keeps_the_file_for_the_next_round(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append("card_audit", {"card_uuid": "a"})

    def down(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        spool.replay(down)
    [kept] = spool.pending_files()
    assert kept.name.startswith("replaying-")
    rows = [orjson.loads(line)["row"] for line in kept.read_bytes().splitlines()]
    assert rows == [{"card_uuid": "a"}]
    # a new row after the failed round goes to a fresh file, and both are replayed later
    spool.append("card_audit", {"card_uuid": "b"})
    got: list[str] = []
    assert spool.replay(lambda t, rs: got.extend(r["card_uuid"] for r in rs) or []) == 2
    assert sorted(got) == ["a", "b"]


def _opened_by_another(path: Path, mine: int) -> bool:
    """Some descriptor of this process other than ``mine`` has ``path`` open."""
    fds = Path("/proc/self/fd")
    for entry in fds.iterdir():
        if int(entry.name) == mine:
            continue
        try:
            if os.readlink(entry) == str(path):
                return True
        except OSError:
            continue
    return False


def test_an_append_never_waits_for_a_replay_holding_its_file(tmp_path: Path) -> None:
    """A replayer claims the process's file (its lock held for as long as a stalled database
    takes) just after an appender opened it: the appender must write the row to a fresh file and
    return, instead of waiting for the replay (a 3.2 s call in the soak's stall)."""
    import fcntl
    import threading

    spool = Spool(tmp_path)
    spool.append("card_audit", {"card_uuid": "before"})
    [path] = spool.pending_files()
    held = os.open(path, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # the replayer's claim
    appender = threading.Thread(
        target=spool.append, args=("card_audit", {"card_uuid": "during"}), daemon=True
    )
    try:
        appender.start()
        deadline = time.monotonic() + 10
        while not _opened_by_another(path, held):  # the appender has opened the claimed file
            assert appender.is_alive(), "the append finished before the claim: nothing tested"
            assert time.monotonic() < deadline, "the appender never opened the spool file"
            time.sleep(0.001)
        renamed = tmp_path / "replaying-0-0.jsonl"
        path.rename(renamed)  # the replayer renames it, then writes to a stalled database
        appender.join(timeout=10)  # the replay's lock is still held throughout
        assert not appender.is_alive(), "the append waited for the replay"
        rows = [orjson.loads(line)["row"]["card_uuid"] for line in path.read_bytes().splitlines()]
        assert rows == ["during"], "the row goes to a fresh file of the process"
        replayed = [orjson.loads(line)["row"] for line in renamed.read_bytes().splitlines()]
        assert replayed == [{"card_uuid": "before"}], "never appended to a file being replayed"
    finally:
        os.close(held)  # the replay ends
        appender.join(timeout=10)
