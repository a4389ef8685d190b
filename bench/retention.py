"""Alert burden by threshold and the retention purge over many audit rows, on SQLite and
PostgreSQL: wall times with a same-run peer each.

The synthetic rows are those of ``bench/monitoring.py`` (ed-admission cards over ``--days`` days,
live and shadow, outcomes on 30%, feedback on 5%). For each backend:

- ``thresholds``: ``alert_burden`` over the whole period with the default 19-threshold grid;
  peer: one ``SELECT count(*)`` over the same rows of ``v_cards`` (the floor of one pass).
- ``purge``: ``purge`` of the first third of the days (Parquet archive of cards, feedback and
  outcomes, delete, three hash-chained records); peer: plain ``DELETE`` statements without an
  archive or record for the second third (the same number of rows, give or take).

    python bench/retention.py                      # 200,000 rows, 30 days
    python bench/retention.py --rows 1000000 --backends sqlite

PostgreSQL: ``--postgres-url`` or ``CDS_TEST_POSTGRES_URL`` (skipped when neither is set).
Benchmarks print figures; they never assert.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cds_service.db.engine import make_engine, normalize_url  # noqa: E402
from cds_service.db.purge import purge  # noqa: E402
from cds_service.monitoring.alert_burden import alert_burden  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_monitoring", ROOT / "bench" / "monitoring.py")
assert _spec and _spec.loader
rows_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rows_bench)
START: datetime = rows_bench.START
MODEL: str = rows_bench.MODEL


def _count(conn: sa.Connection, table: str) -> int:
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() or 0)


def measure(name: str, url: str, args: argparse.Namespace, tmp: Path) -> None:
    load = rows_bench.load_postgres if name == "postgresql" else rows_bench.load_sqlite
    t0 = time.perf_counter()
    loaded = load(url, rows_bench.chunks(args.rows, args.days, args.days + 1, args.seed))
    print(f"{name}: loaded {loaded:,} cards in {time.perf_counter() - t0:.1f} s")
    engine = make_engine(url)
    end = START + timedelta(days=args.days)
    try:
        t0 = time.perf_counter()
        burden = alert_burden(engine, MODEL, START, end, labels={"1.0.0": "admitted_24h"})
        t_burden = time.perf_counter() - t0
        t0 = time.perf_counter()
        with engine.connect() as conn:
            scanned = conn.execute(
                sa.text(
                    "SELECT count(*) FROM v_cards WHERE model_name = :m AND role = 'live' "
                    "AND card_kind = 'risk' AND requested_at >= :s AND requested_at < :e"
                ),
                {"m": MODEL, "s": START, "e": end},
            ).scalar()
        t_scan = time.perf_counter() - t0
        print(
            f"{name}: thresholds over {burden.risk_cards:,} risk cards (grid of "
            f"{len(burden.rows)}): {t_burden:.2f} s; peer, one count(*) over the same "
            f"{scanned:,} rows: {t_scan:.2f} s"
        )

        third = args.days // 3
        cut1, cut2 = START + timedelta(days=third), START + timedelta(days=2 * third)
        with engine.connect() as conn:
            before = {t: _count(conn, t) for t in ("card_audit", "card_feedback", "outcomes")}
        t0 = time.perf_counter()
        done = purge(
            engine,
            {"card_audit": cut1},
            archive_dir=tmp / f"archive-{name}",
            by="bench",
            reason="bench",
            environment="production",
            now=datetime.now(UTC),
        )
        t_purge = time.perf_counter() - t0
        purged = sum(d.rows for d in done)
        size = sum(d.file.stat().st_size for d in done if d.file)
        print(
            f"{name}: purge before day {third}: {purged:,} rows "
            f"({', '.join(f'{d.table} {d.rows:,}' for d in done)}) archived to "
            f"{size / 1e6:.1f} MB of Parquet and deleted in {t_purge:.2f} s "
            f"({purged / t_purge:,.0f} rows/s)"
        )
        cards_in = "SELECT card_uuid FROM card_audit WHERE requested_at < :c"
        t0 = time.perf_counter()
        with engine.begin() as conn:
            n = 0
            for table in ("card_feedback", "outcomes"):
                n += conn.execute(
                    sa.text(f"DELETE FROM {table} WHERE card_uuid IN ({cards_in})"),
                    {"c": cut2},
                ).rowcount
            n += conn.execute(
                sa.text("DELETE FROM card_audit WHERE requested_at < :c"), {"c": cut2}
            ).rowcount
        t_delete = time.perf_counter() - t0
        print(
            f"{name}: peer, plain DELETE (no archive, no record) of the next {third} days: "
            f"{n:,} rows in {t_delete:.2f} s ({n / t_delete:,.0f} rows/s); rows before: {before}"
        )
    finally:
        engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000, help="audit rows (live + shadow)")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--postgres-url", default=os.environ.get("CDS_TEST_POSTGRES_URL"))
    args = ap.parse_args()
    print(
        f"retention bench: {args.rows:,} audit rows over {args.days} days; python "
        f"{sys.version.split()[0]}, {os.cpu_count()} CPU(s)"
    )
    with tempfile.TemporaryDirectory(prefix="cds-retention-bench-") as tmp:
        for name in args.backends.split(","):
            if name == "sqlite":
                measure(name, f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args, Path(tmp))
            elif name == "postgresql":
                if not args.postgres_url:
                    print("postgresql: skipped (set --postgres-url or CDS_TEST_POSTGRES_URL)")
                    continue
                schema = f"bench_{uuid.uuid4().hex[:10]}"
                admin = sa.create_engine(normalize_url(args.postgres_url))
                with admin.begin() as conn:
                    conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
                sep = "&" if "?" in args.postgres_url else "?"
                try:
                    url = f"{args.postgres_url}{sep}options=-csearch_path%3D{schema}"
                    measure(name, url, args, Path(tmp))
                finally:
                    with admin.begin() as conn:
                        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                    admin.dispose()


if __name__ == "__main__":
    main()
