"""Durable local spool for audit rows the database could not take.

A card is never withheld because the database is down, and its audit row is never lost: it is
appended to a per-process JSON-lines file and fsynced before the response leaves, then replayed
into the database (idempotently, keyed by primary key or unique constraint) when it is back.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson


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
            fd = os.open(self._current(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def pending_files(self) -> list[Path]:
        return sorted(self.directory.glob("audit-*.jsonl")) + sorted(
            self.directory.glob("replaying-*.jsonl")
        )

    def replay(self, write: Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]) -> int:
        """Move each spool file aside, write its rows, delete it; on failure keep it for later."""
        replayed = 0
        with self._lock:
            files = self.pending_files()
            claimed = []
            for path in files:
                if path.name.startswith("audit-"):
                    target = self.directory / f"replaying-{os.getpid()}-{time.time_ns()}.jsonl"
                    path.rename(target)
                    claimed.append(target)
                else:
                    claimed.append(path)
        for path in claimed:
            by_table: dict[str, list[dict[str, Any]]] = {}
            with path.open("rb") as handle:
                for line in handle:
                    if line.strip():
                        entry = orjson.loads(line)
                        by_table.setdefault(entry["table"], []).append(entry["row"])
            rejected: list[dict[str, Any]] = []
            for table, rows in by_table.items():
                # raises while the database is still down: the file stays for the next try
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
