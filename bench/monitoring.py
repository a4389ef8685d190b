"""Monitoring over 1,000,000 audit rows on SQLite and PostgreSQL: wall time and peak memory.

For each backend the script builds a fresh database (a SQLite file in a temporary folder; a new
schema on PostgreSQL), migrates it, bulk-loads synthetic audit rows (``executemany`` on SQLite,
``COPY`` on PostgreSQL) with outcomes and feedback, then runs ``run_monitoring`` in a child
process (this script re-invoked with ``--child``) and prints the child's figures: the time inside
``run_monitoring``, the child's whole wall time (interpreter start and imports included) and its
peak resident memory (``ru_maxrss``, the RSS high-water mark).

The synthetic cards are for the ed-admission model: features drawn from its manifest's reference
sample (missing at the reference rates), 80% live cards of version 1.0.0 and 20% shadow cards of a
1.1.0 (a copy of the same manifest) on the same hook_instances, 5% without a risk, outcomes for 30%
of the risk cards (live and shadow alike, as ``cds-service outcomes`` derives them), feedback on
5% of the live cards; from day ``--shift-day`` on, heart rate is 15/min higher
(so alerts are raised and written too). All patients are synthetic pseudonyms.

    python bench/monitoring.py                     # 1,000,000 rows, 30 days, 1-day windows
    python bench/monitoring.py --rows 100000 --backends sqlite

PostgreSQL: ``--postgres-url`` or ``CDS_TEST_POSTGRES_URL`` (skipped when neither is set).
Benchmarks print figures; they never assert.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cds_service.db.engine import make_engine, normalize_url, upgrade  # noqa: E402

MODEL = "ed-admission"
SERVICE = "ed-admission-risk"
START = datetime(2026, 2, 1, tzinfo=UTC)
CHUNK = 50_000
CARD_COLUMNS = (
    "card_uuid",
    "hook_instance",
    "service_id",
    "hook",
    "model_name",
    "model_version",
    "artifact_sha256",
    "environment",
    "role",
    "shown",
    "card_kind",
    "patient_pseudonym",
    "encounter_pseudonym",
    "requested_at",
    "risk",
    "risk_band",
    "indicator",
    "latency_ms",
    "features",
    "missing_features",
    "inputs",
    "mapper_warnings",
    "summary",
    "caller_iss",
)
FEEDBACK_COLUMNS = (
    "card_uuid",
    "service_id",
    "outcome",
    "override_reason_code",
    "override_reason_display",
    "accepted_suggestions",
    "outcome_timestamp",
    "received_at",
    "channel",
)
OUTCOME_COLUMNS = (
    "card_uuid",
    "label_name",
    "patient_pseudonym",
    "model_name",
    "label",
    "source",
    "derived_at",
)


def bundled_models_copy(tmp: Path) -> Path:
    root = tmp / "models"
    src = ROOT / "models" / MODEL
    (root / MODEL).mkdir(parents=True)
    shutil.copy(src / "training.toml", root / MODEL / "training.toml")
    for version in ("1.0.0", "1.1.0"):
        (root / MODEL / version).mkdir()
        shutil.copy(src / "1.0.0" / "manifest.json", root / MODEL / version / "manifest.json")
    return root


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    raw = rng.bytes(16 * n).hex()
    return [
        f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
        for h in (raw[i * 32 : (i + 1) * 32] for i in range(n))
    ]


def _ts(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite DATETIME text, UTC


def chunks(
    rows: int, days: int, shift_day: int, seed: int
) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """(cards, feedback, outcomes) in chunks of about CHUNK cards, in time order."""
    manifest = json.loads((ROOT / "models" / MODEL / "1.0.0" / "manifest.json").read_text())
    names: list[str] = manifest["feature_names"]
    label_name = manifest["label"]["name"]
    samples = [np.array(manifest["reference"][n]["sample"]) for n in names]
    missing = np.array([manifest["reference"][n]["missing_rate"] for n in names])
    hr = names.index("heart_rate")
    rng = np.random.default_rng(seed)
    live_total = int(rows / 1.25)  # 20% of the live cards get a shadow row
    seconds = days * 86400
    reasons = ["already-known", "disagree", "data-wrong", "not-applicable"]
    for first in range(0, live_total, int(CHUNK / 1.25)):
        n = min(int(CHUNK / 1.25), live_total - first)
        offsets = (np.arange(first, first + n) + rng.random(n)) * seconds / live_total
        times = [START + timedelta(seconds=float(s)) for s in offsets]
        values = np.column_stack([s[rng.integers(0, len(s), n)] for s in samples]).astype(
            np.float64
        )
        values[:, hr] += np.where(offsets >= shift_day * 86400, 15.0, 0.0)
        absent = rng.random((n, len(names))) < missing
        no_risk = rng.random(n) < 0.05
        risk = rng.beta(0.7, 1.4, n)  # calibrated, AUROC about 0.84
        shadow_risk = np.clip(risk + rng.normal(0, 0.05, n), 0, 1)
        label = (rng.random(n) < risk).astype(int)
        has_outcome = (rng.random(n) < 0.3) & ~no_risk
        feedback = (rng.random(n) < 0.05) & ~no_risk
        overridden = rng.random(n) < 0.35
        is_shadowed = rng.random(n) < 0.25
        uuids, hooks, shadow_uuids = _uuids(rng, n), _uuids(rng, n), _uuids(rng, n)
        cards, fb, outs = [], [], []
        for i in range(n):
            parts = [
                f'"{name}":' + ("null" if absent[i, j] else repr(float(values[i, j])))
                for j, name in enumerate(names)
            ]
            feats = "{" + ",".join(parts) + "}"
            miss = json.dumps([name for j, name in enumerate(names) if absent[i, j]])
            ts = _ts(times[i])
            for role, version, card_id, r in (
                ("live", "1.0.0", uuids[i], float(risk[i])),
                ("shadow", "1.1.0", shadow_uuids[i], float(shadow_risk[i])),
            ):
                if role == "shadow" and not is_shadowed[i]:
                    continue
                p = None if no_risk[i] else r
                band, indicator = (
                    (None, "info")
                    if p is None
                    else ("low", "info")
                    if p < 0.2
                    else ("moderate", "warning")
                    if p < 0.5
                    else ("high", "critical")
                )
                cards.append(
                    (
                        card_id,
                        hooks[i],
                        SERVICE,
                        "encounter-start",
                        MODEL,
                        version,
                        "0" * 64,
                        "production",
                        role,
                        role == "live",
                        "no-risk" if p is None else "risk",
                        f"synthetic-{first + i}",
                        f"synthetic-enc-{first + i}",
                        ts,
                        p,
                        band,
                        indicator,
                        4.2,
                        feats,
                        miss,
                        "{}",
                        "{}",
                        "synthetic",
                        None,
                    )
                )
            if has_outcome[i]:  # like `cds-service outcomes`: for the live and the shadow card
                for card_id in (uuids[i], shadow_uuids[i]) if is_shadowed[i] else (uuids[i],):
                    outs.append(
                        (
                            card_id,
                            label_name,
                            f"synthetic-{first + i}",
                            MODEL,
                            int(label[i]),
                            "bench",
                            ts,
                        )
                    )
            if feedback[i]:
                over = bool(overridden[i])
                code = reasons[(first + i) % len(reasons)] if over else None
                fb.append(
                    (
                        uuids[i],
                        SERVICE,
                        "overridden" if over else "accepted",
                        code,
                        None,
                        "[]",
                        ts,
                        ts,
                        "cds-hooks",
                    )
                )
        yield cards, fb, outs


def load_sqlite(url: str, data: Iterator[Any]) -> int:
    engine = make_engine(url)
    upgrade(engine)
    raw = engine.raw_connection()
    total = 0
    try:
        cur = raw.cursor()

        def insert(table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
            marks = ",".join("?" * len(cols))
            cur.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({marks})", rows)

        for cards, fb, outs in data:
            insert("card_audit", CARD_COLUMNS, cards)
            insert("card_feedback", FEEDBACK_COLUMNS, fb)
            insert("outcomes", OUTCOME_COLUMNS, outs)
            raw.commit()
            total += len(cards)
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return total


def load_postgres(url: str, data: Iterator[Any]) -> int:
    engine = make_engine(url)
    upgrade(engine)
    raw = engine.raw_connection()
    total = 0
    try:
        cur = raw.cursor()

        def copy(table: str, cols: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
            # requested_at etc. are UTC text without an offset: the session runs in UTC
            with cur.copy(f"COPY {table} ({','.join(cols)}) FROM STDIN") as cp:  # type: ignore[attr-defined]
                for row in rows:
                    cp.write_row(row)

        for cards, fb, outs in data:
            copy("card_audit", CARD_COLUMNS, cards)
            copy("card_feedback", FEEDBACK_COLUMNS, fb)
            copy("outcomes", OUTCOME_COLUMNS, outs)
            raw.commit()
            total += len(cards)
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    return total


def child(args: argparse.Namespace) -> None:
    """Run the monitor once and print its figures as JSON (stdout's last line)."""
    from cds_service.monitoring import run_monitoring

    engine = make_engine(args.url)
    t0 = time.perf_counter()
    report = run_monitoring(
        engine,
        Path(args.models_dir),
        window_start=START,
        window_end=START + timedelta(days=args.days),
        window=timedelta(hours=args.window_hours) if args.window_hours else None,
    )
    elapsed = time.perf_counter() - t0
    engine.dispose()
    rusage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "run_seconds": round(elapsed, 2),
                "cpu_seconds": round(rusage.ru_utime + rusage.ru_stime, 1),
                "peak_rss_mb": round(rusage.ru_maxrss / 1024, 1),
                "rows_scanned": report.rows_scanned,
                "windows": report.windows,
                "groups": len(report.groups),
                "results": report.results_written,
                "alerts": len(report.alerts),
                "alert_metrics": sorted({f"{a.metric}:{a.feature}" for a in report.alerts}),
            }
        )
    )


def measure(name: str, url: str, args: argparse.Namespace, root: Path) -> None:
    data = chunks(args.rows, args.days, args.shift_day, args.seed)
    t0 = time.perf_counter()
    loaded = (load_postgres if name == "postgresql" else load_sqlite)(url, data)
    load_s = time.perf_counter() - t0
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--url",
        url,
        "--models-dir",
        str(root),
        "--days",
        str(args.days),
        "--window-hours",
        str(args.window_hours),
    ]
    t1 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t1
    if proc.returncode != 0:
        print(f"{name}: monitor failed\n{proc.stderr[-3000:]}")
        return
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"{name:<10} rows={loaded:,} load={load_s:.1f}s | run_monitoring={fig['run_seconds']}s "
        f"child wall={wall:.1f}s child CPU={fig['cpu_seconds']}s "
        f"peak RSS={fig['peak_rss_mb']} MB | windows={fig['windows']} "
        f"groups={fig['groups']} results={fig['results']} alerts={fig['alerts']} "
        f"({', '.join(fig['alert_metrics'][:6])})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="audit rows (live + shadow)")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--window-hours", type=float, default=24.0, help="0: one window")
    ap.add_argument("--shift-day", type=int, default=20)
    ap.add_argument("--seed", type=int, default=20260314)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--postgres-url", default=os.environ.get("CDS_TEST_POSTGRES_URL"))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--models-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    print(
        f"monitoring bench: {args.rows:,} audit rows over {args.days} days, "
        + (f"windows of {args.window_hours:g} h" if args.window_hours else "one window")
        + f"; python {sys.version.split()[0]}, {os.cpu_count()} CPU(s)"
    )
    with tempfile.TemporaryDirectory(prefix="cds-monitor-bench-") as tmp:
        root = bundled_models_copy(Path(tmp))
        for name in args.backends.split(","):
            if name == "sqlite":
                measure(name, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args, root)
            elif name == "postgresql":
                if not args.postgres_url:
                    print("postgresql: skipped (set --postgres-url or CDS_TEST_POSTGRES_URL)")
                    continue
                measure_postgres(args, root)


def measure_postgres(args: argparse.Namespace, root: Path) -> None:
    import sqlalchemy as sa

    base = args.postgres_url
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(normalize_url(base))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        measure("postgresql", f"{base}{sep}options=-csearch_path%3D{schema}", args, root)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
