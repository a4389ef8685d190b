"""Durable local spool for audit rows the database could not take.

A card is never withheld because the database is down, and its audit row is never lost: it is
appended to a per-process JSON-lines file and fsynced before the response leaves, then replayed
into the database (idempotently, keyed by primary key or unique constraint) when it is back.

Several worker processes share one spool folder, so every file is claimed under an exclusive
``flock``: an appender holds it while it writes, a replayer for the whole replay (and skips a file
someone else holds). Both check after locking that the path still names the inode they locked, so
a row is never appended to a file that a replayer has already read and is about to delete.

An appender never waits for a replay: a replay holds its lock for as long as the database takes
(seconds when it stalls), and an appender that opened the file just before a replayer claimed it
would otherwise wait that long, holding every other append of its process behind it (a call
took 3.2 s in a stall that way). It takes the lock without blocking and, while someone holds it,
checks whether the file was renamed away (then it appends to a fresh file); a replayer renames an
``audit-`` file right after claiming it, so the wait is that moment, never the replay.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

_APPEND_RETRY_SECONDS = 0.001


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _current(self) -> Path:
        return self.directory / f"audit-{os.getpid()}.jsonl"

    def append(self, table: str, row: dict[str, Any]) -> None:
        line = orjson.dumps({"table": table, "row": row}) + b"\n"
        with self._lock:
            while True:
                fd = os.open(self._current(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    if _lock_while_at(fd, self._current()):
                        os.write(fd, line)
                        os.fsync(fd)
                        return
                finally:
                    os.close(fd)  # also releases the lock
                # a replayer renamed the file while we waited: append to a fresh one

    def pending_files(self) -> list[Path]:
        return sorted(self.directory.glob("audit-*.jsonl")) + sorted(
            self.directory.glob("replaying-*.jsonl")
        )

    def replay(self, write: Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]) -> int:
        """Claim each spool file no one else holds, write its rows, delete it; when the database
        is still away ``write`` raises and the file stays for the next try."""
        replayed = 0
        for path in self.pending_files():
            claimed = _claim(path)
            if claimed is None:
                continue  # being appended to or replayed by another process, or gone
            fd, current = claimed
            try:
                if current.name.startswith("audit-"):
                    # new rows of its process go to a fresh file from now on
                    target = self.directory / f"replaying-{os.getpid()}-{time.time_ns()}.jsonl"
                    current.rename(target)
                    current = target
                replayed += self._replay_file(fd, current, write)
            finally:
                os.close(fd)
        return replayed

    def _replay_file(
        self,
        fd: int,
        path: Path,
        write: Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]],
    ) -> int:
        by_table: dict[str, list[dict[str, Any]]] = {}
        with os.fdopen(os.dup(fd), "rb") as handle:
            handle.seek(0)
            for line in handle:
                if line.strip():
                    entry = orjson.loads(line)
                    by_table.setdefault(entry["table"], []).append(entry["row"])
        replayed = 0
        rejected: list[dict[str, Any]] = []
        for table, rows in by_table.items():
            bad = write(table, rows)
            replayed += len(rows) - len(bad)
            rejected += [{"table": table, "row": row} for row in bad]
        if rejected:
            self._dead_letter(rejected)
        path.unlink()
        return replayed

    def _dead_letter(self, entries: list[dict[str, Any]]) -> None:
        """Rows the database refuses for good (not for an outage) are kept aside, never dropped,
        so that they cannot block the rows behind them."""
        target = self.directory / f"dead-letter-{os.getpid()}-{time.time_ns()}.jsonl"
        with target.open("wb") as handle:
            for entry in entries:
                handle.write(orjson.dumps(entry) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())


def _still_at(fd: int, path: Path) -> bool:
    """The locked descriptor is still the file at ``path`` (not renamed or deleted meanwhile)."""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _lock_while_at(fd: int, path: Path) -> bool:
    """An exclusive lock on ``fd`` while ``path`` still names it; False (without waiting for the
    holder) as soon as it does not."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _still_at(fd, path):
                return False  # a replayer claimed and renamed it: never append to it
            time.sleep(_APPEND_RETRY_SECONDS)  # the holder renames it or finishes its write
            continue
        return _still_at(fd, path)


def _claim(path: Path) -> tuple[int, Path] | None:
    """An exclusive lock on a spool file, without waiting; None when someone else holds it or it
    has gone (another replayer finished it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if not _still_at(fd, path):
        os.close(fd)
        return None
    return fd, path
