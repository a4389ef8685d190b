"""Instructions per signed call, counted by callgrind: a figure that another process on the same
cores does not move (wall time and even CPU time do).

Runs ``request_profile.py`` twice under ``valgrind --tool=callgrind`` (every thread counted, so
the database commits in worker threads are in), with the same start-up and warm-up and two call
counts; the difference divided by the extra calls is one call's instructions, start-up
cancelled out. The figure includes signing each call's ES384 token in the same process (~2.9
million instructions with joserfc 1.x, the same before and after a change). Also prints the
start-up's own count (the first run less its calls). Slow: about 50x the real time (a few
minutes per run on a quiet machine).

    python3 bench/request_instructions.py [--calls 20 70] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _interpreter() -> str:
    """The real interpreter binary: valgrind must not trace a shell shim (pyenv)."""
    return os.path.realpath(sys.executable)


def instructions(calls: int, database_url: str | None, folder: Path) -> int:
    out = folder / f"callgrind.{calls}.out"
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", _interpreter()]
    command += [str(HERE / "request_profile.py"), "--calls", str(calls), "--warmup", "30"]
    command += ["--audit-budget-ms", "600000"]  # ~50x slower: commit, never spool
    if database_url:
        command += ["--database-url", database_url]
    subprocess.run(command, check=True, capture_output=True)
    match = re.search(r"^summary: (\d+)$", out.read_text(errors="replace"), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no callgrind summary in {out}")
    return int(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, nargs=2, default=[20, 70])
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    low, high = sorted(args.calls)
    with tempfile.TemporaryDirectory(prefix="cds-callgrind-") as tmp:
        few = instructions(low, args.database_url, Path(tmp))
        many = instructions(high, args.database_url, Path(tmp))
    per_call = (many - few) / (high - low)
    print(f"instructions: {low} calls {few:,}; {high} calls {many:,}")
    print(f"per signed call: {per_call:,.0f}")
    print(
        f"start-up, imports and warm-up (the {low}-call run less its calls): "
        f"{few - low * per_call:,.0f}"
    )


if __name__ == "__main__":
    main()
