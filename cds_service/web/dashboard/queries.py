"""The dashboard's query layer: aggregate figures from the quality views, on SQLite and PostgreSQL.

Every query aggregates in SQL (GROUP BY, sums) or is a bounded list (LIMIT); nothing here reads
per-patient rows into Python, and nothing returns a patient or encounter pseudonym. Monitoring
figures come from the views v_drift, v_performance, v_calibration and v_subgroups; when several
monitoring runs computed the same window, the latest run's figures are used, and only windows of
one length are combined (``Filters.window_seconds``, chosen among the lengths that exist).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from cds_service.lifecycle.deployments import ENVIRONMENTS
from cds_service.serving.hook_defs import HookDefinition
from cds_service.serving.registry import Registry
from fhir_mappers.timeutil import as_utc

TS = sa.DateTime(timezone=True)
MAX_RANGE_DAYS = 400
HISTOGRAM_BINS = 20
LIMIT_ALERTS = 100
LIMIT_DEPLOYMENTS = 50
LIMIT_REASONS = 12
LIMIT_SCATTER = 400
LIMIT_WINDOWS = 5000
LIMIT_RESULTS = 50_000
ROLES = ("live", "shadow")


def _view(name: str, *columns: tuple[str, Any]) -> sa.TableClause:
    return sa.table(name, *(sa.column(c, t) for c, t in columns))


_GROUP = (
    ("service_id", sa.String()),
    ("model_name", sa.String()),
    ("model_version", sa.String()),
    ("environment", sa.String()),
    ("role", sa.String()),
)
V_CARDS = _view(
    "v_cards",
    *_GROUP,
    ("hook_instance", sa.String()),
    ("card_kind", sa.String()),
    ("requested_at", TS),
    ("risk", sa.Float()),
    ("risk_band", sa.String()),
    ("indicator", sa.String()),
    ("missing_features", sa.Text()),
    ("latency_ms", sa.Float()),
)
V_DAILY = _view(
    "v_daily_volume",
    *_GROUP,
    ("day", sa.String()),
    ("cards", sa.Integer()),
    ("risk_cards", sa.Integer()),
    ("no_risk_cards", sa.Integer()),
    ("alerting_cards", sa.Integer()),
    ("mean_risk", sa.Float()),
    ("mean_latency_ms", sa.Float()),
)
V_FEEDBACK = _view(
    "v_feedback",
    ("service_id", sa.String()),
    ("model_version", sa.String()),
    ("environment", sa.String()),
    ("role", sa.String()),
    ("outcome", sa.String()),
    ("override_reason_code", sa.String()),
    ("override_reason_display", sa.String()),
    ("risk_band", sa.String()),
    ("requested_at", TS),
)
V_OUTCOMES = _view(
    "v_outcomes",
    *_GROUP,
    ("label", sa.Integer()),
    ("requested_at", TS),
)
_RESULT_COLUMNS = (
    *_GROUP,
    ("run_id", sa.String()),
    ("window_start", TS),
    ("window_end", TS),
    ("metric", sa.String()),
    ("feature", sa.String()),
    ("subgroup", sa.String()),
    ("value", sa.Float()),
    ("n", sa.Integer()),
    ("details", sa.Text()),
)
V_DRIFT = _view("v_drift", *_RESULT_COLUMNS)
V_PERFORMANCE = _view("v_performance", *_RESULT_COLUMNS)
V_CALIBRATION = _view("v_calibration", *_RESULT_COLUMNS)
V_SUBGROUPS = _view("v_subgroups", *_RESULT_COLUMNS)
V_ALERTS = _view(
    "v_alerts",
    *(c for c in _GROUP if c[0] != "role"),
    ("alert_id", sa.Integer()),
    ("created_at", TS),
    ("window_start", TS),
    ("window_end", TS),
    ("metric", sa.String()),
    ("feature", sa.String()),
    ("subgroup", sa.String()),
    ("value", sa.Float()),
    ("threshold", sa.Float()),
    ("severity", sa.String()),
    ("message", sa.Text()),
)
V_DEPLOYMENTS = _view(
    "v_deployments",
    ("seq", sa.Integer()),
    ("model_name", sa.String()),
    ("model_version", sa.String()),
    ("artifact_sha256", sa.String()),
    ("environment", sa.String()),
    ("role", sa.String()),
    ("action", sa.String()),
    ("decided_by", sa.String()),
    ("reason", sa.Text()),
    ("override", sa.Boolean()),
    ("override_reason", sa.Text()),
    ("evidence", sa.Text()),
    ("created_at", TS),
    ("record_hash", sa.String()),
)
# The results table itself (not a view): the list of windows and which run computed them.
MONITORING_RESULTS = _view("monitoring_results", *_RESULT_COLUMNS)
MONITORING_RUNS = _view(
    "monitoring_runs", ("run_id", sa.String()), ("started_at", TS), ("parameters", sa.Text())
)


utc = as_utc


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """One dashboard selection. ``start`` and ``end`` are UTC calendar days, both included."""

    service_id: str
    environment: str
    start: date
    end: date
    role: str = "live"
    model_version: str | None = None
    window_seconds: int | None = None

    @property
    def start_at(self) -> datetime:
        return _midnight(self.start)

    @property
    def end_at(self) -> datetime:
        """Exclusive upper bound: midnight after the last day."""
        return _midnight(self.end) + timedelta(days=1)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


@dataclass(slots=True)
class Options:
    """What the filter form offers."""

    services: list[tuple[str, str]]  # (id, title)
    environments: list[str]
    versions: list[str]
    last_day: date | None


def latest_service(conn: Connection) -> str | None:
    """The service of the most recent card (an index scan on requested_at, one row)."""
    c = V_CARDS
    row = conn.execute(sa.select(c.c.service_id).order_by(c.c.requested_at.desc()).limit(1)).first()
    return str(row[0]) if row else None


def options(conn: Connection, registry: Registry, service_id: str, environment: str) -> Options:
    """Choices without scanning the audit table: services from the hook definitions, versions
    from the loaded models and the deployment records, environments from the fixed list."""
    services = {sid: d.title for sid, d in registry.services.items()}
    services.setdefault(service_id, service_id)
    hook_def = registry.services.get(service_id)
    versions: set[str] = set()
    if hook_def is not None:
        versions.update(v for (name, v) in registry.models if name == hook_def.model)
        d = V_DEPLOYMENTS
        versions.update(
            r[0]
            for r in conn.execute(
                sa.select(d.c.model_version)
                .where(d.c.model_name == hook_def.model)
                .distinct()
                .limit(200)
            )
        )
    c = V_CARDS
    row = conn.execute(
        sa.select(c.c.requested_at)
        .where(c.c.service_id == service_id, c.c.environment == environment)
        .order_by(c.c.requested_at.desc())
        .limit(1)
    ).first()
    return Options(
        services=sorted(services.items()),
        environments=list(ENVIRONMENTS),
        versions=sorted(versions, key=_version_key),
        last_day=utc(row[0]).date() if row else None,
    )


def _version_key(version: str) -> tuple[Any, ...]:
    parts = []
    for piece in version.replace("-", ".").split("."):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    return tuple(parts)


def _card_filters(t: sa.TableClause, f: Filters, *, role: bool = True) -> list[Any]:
    out: list[Any] = [
        t.c.service_id == f.service_id,
        t.c.environment == f.environment,
        t.c.requested_at >= f.start_at,
        t.c.requested_at < f.end_at,
    ]
    if role:
        out.append(t.c.role == f.role)
    if f.model_version:
        out.append(t.c.model_version == f.model_version)
    return out


def day_expression(conn: Connection, column: Any) -> Any:
    """The UTC calendar day of a timestamp as 'YYYY-MM-DD' text (as the views compute it)."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.substr(sa.cast(column, sa.Text), 1, 10)


def _count_if(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


# --- card-level aggregates --------------------------------------------------------------------


@dataclass(slots=True)
class DayVolume:
    day: date
    cards: int = 0
    risk_cards: int = 0
    no_risk_cards: int = 0
    alerting_cards: int = 0
    mean_risk: float | None = None

    @property
    def other_risk_cards(self) -> int:
        return max(0, self.risk_cards - self.alerting_cards)


def volume_by_day(conn: Connection, f: Filters) -> list[DayVolume]:
    v = V_DAILY
    conds = [
        v.c.service_id == f.service_id,
        v.c.environment == f.environment,
        v.c.role == f.role,
        v.c.day >= f.start.isoformat(),
        v.c.day <= f.end.isoformat(),
    ]
    if f.model_version:
        conds.append(v.c.model_version == f.model_version)
    rows = conn.execute(
        sa.select(
            v.c.day,
            sa.func.sum(v.c.cards),
            sa.func.sum(v.c.risk_cards),
            sa.func.sum(v.c.no_risk_cards),
            sa.func.sum(v.c.alerting_cards),
            sa.func.sum(v.c.mean_risk * v.c.risk_cards),
        )
        .where(*conds)
        .group_by(v.c.day)
        .order_by(v.c.day)
        .limit(MAX_RANGE_DAYS + 1)
    )
    by_day = {
        r[0]: DayVolume(
            day=date.fromisoformat(r[0]),
            cards=int(r[1] or 0),
            risk_cards=int(r[2] or 0),
            no_risk_cards=int(r[3] or 0),
            alerting_cards=int(r[4] or 0),
            mean_risk=float(r[5]) / int(r[2]) if r[5] is not None and r[2] else None,
        )
        for r in rows
    }
    out = []
    for day in f.days:
        item = by_day.get(day.isoformat(), DayVolume(day))
        out.append(item)
    return out


def latency_mean(conn: Connection, f: Filters) -> float | None:
    c = V_CARDS
    value = conn.execute(sa.select(sa.func.avg(c.c.latency_ms)).where(*_card_filters(c, f)))
    result = value.scalar()
    return float(result) if result is not None else None


@dataclass(slots=True)
class Histogram:
    edges: list[float]
    counts: list[int]
    bands: list[tuple[str, float, str]]  # (name, upper bound, indicator)
    total: int = 0
    band_counts: dict[str, int] = field(default_factory=dict)


def risk_histogram(
    conn: Connection, f: Filters, hook_def: HookDefinition | None, bins: int = HISTOGRAM_BINS
) -> Histogram:
    c = V_CARDS
    edges = [round(i / bins, 6) for i in range(bins + 1)]
    # A CASE ladder rather than floor()/CAST: CAST(float AS INTEGER) rounds on PostgreSQL and
    # truncates on SQLite; comparisons mean the same everywhere.
    which = sa.case(*((c.c.risk < edges[i + 1], i) for i in range(bins - 1)), else_=bins - 1)
    rows = conn.execute(
        sa.select(which.label("bin"), sa.func.count())
        .where(*_card_filters(c, f), c.c.card_kind == "risk", c.c.risk.is_not(None))
        .group_by(which)
    )
    counts = [0] * bins
    for b, n in rows:
        counts[int(b)] = int(n)
    bands = [(b.name, b.below, b.indicator) for b in hook_def.bands] if hook_def else []
    band_counts = {
        str(name): int(n)
        for name, n in conn.execute(
            sa.select(c.c.risk_band, sa.func.count())
            .where(*_card_filters(c, f), c.c.card_kind == "risk")
            .group_by(c.c.risk_band)
            .limit(50)
        )
        if name is not None
    }
    return Histogram(edges, counts, bands, sum(counts), band_counts)


def _like_token(name: str) -> str:
    escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"{escaped}"%'


@dataclass(slots=True)
class MissingRate:
    feature: str
    label: str
    missing: int
    cards: int
    reference_rate: float | None
    required: bool

    @property
    def rate(self) -> float | None:
        return self.missing / self.cards if self.cards else None


def missing_rates(
    conn: Connection,
    f: Filters,
    features: Sequence[tuple[str, str, bool]],
    reference: dict[str, float],
) -> list[MissingRate]:
    """Share of the selection's cards in which each feature was missing, counted in SQL from
    the JSON list ``missing_features`` (one LIKE per feature name, in one pass)."""
    c = V_CARDS
    if not features:
        return []
    columns = [
        _count_if(c.c.missing_features.like(_like_token(name), escape="\\"))
        for name, _label, _req in features
    ]
    row = conn.execute(sa.select(sa.func.count(), *columns).where(*_card_filters(c, f))).one()
    total = int(row[0] or 0)
    return [
        MissingRate(name, label, int(row[i + 1] or 0), total, reference.get(name), req)
        for i, (name, label, req) in enumerate(features)
    ]


@dataclass(slots=True)
class Feedback:
    total: int = 0
    accepted: int = 0
    overridden: int = 0
    reasons: list[tuple[str, int]] = field(default_factory=list)
    by_band: dict[str, tuple[int, int]] = field(default_factory=dict)  # band -> (acc, over)
    by_day: dict[date, tuple[int, int]] = field(default_factory=dict)

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.total if self.total else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.total if self.total else None


def feedback(conn: Connection, f: Filters) -> Feedback:
    v = V_FEEDBACK
    conds = _card_filters(v, f)
    out = Feedback()
    accepted, overridden = v.c.outcome == "accepted", v.c.outcome == "overridden"
    day = day_expression(conn, v.c.requested_at)
    for band, n_acc, n_over, n in conn.execute(
        sa.select(v.c.risk_band, _count_if(accepted), _count_if(overridden), sa.func.count())
        .where(*conds)
        .group_by(v.c.risk_band)
        .limit(50)
    ):
        out.total += int(n)
        out.accepted += int(n_acc)
        out.overridden += int(n_over)
        out.by_band[band or "(no risk)"] = (int(n_acc), int(n_over))
    for d, n_acc, n_over in conn.execute(
        sa.select(day, _count_if(accepted), _count_if(overridden))
        .where(*conds)
        .group_by(day)
        .order_by(day)
        .limit(MAX_RANGE_DAYS + 1)
    ):
        out.by_day[date.fromisoformat(d)] = (int(n_acc), int(n_over))
    reason = sa.func.coalesce(v.c.override_reason_display, v.c.override_reason_code)
    out.reasons = [
        (str(r) if r is not None else "(no reason given)", int(n))
        for r, n in conn.execute(
            sa.select(reason, sa.func.count())
            .where(*conds, overridden)
            .group_by(reason)
            .order_by(sa.func.count().desc())
            .limit(LIMIT_REASONS)
        )
    ]
    return out


def outcome_counts(conn: Connection, f: Filters) -> tuple[int, int]:
    """(cards with a known outcome, of which positive) in the selection."""
    o = V_OUTCOMES
    n, positives = conn.execute(
        sa.select(sa.func.count(), _count_if(o.c.label == 1)).where(*_card_filters(o, f))
    ).one()
    return int(n or 0), int(positives or 0)


@dataclass(slots=True)
class ShadowVersion:
    version: str
    pairs: int
    same_band: int
    both_risk: int
    mean_abs_diff: float | None

    @property
    def agreement(self) -> float | None:
        return self.same_band / self.pairs if self.pairs else None


@dataclass(slots=True)
class Shadow:
    versions: list[ShadowVersion] = field(default_factory=list)
    bands: dict[tuple[str, str], int] = field(default_factory=dict)  # (live, shadow) -> n
    sample: list[tuple[float, float]] = field(default_factory=list)  # (live, shadow) risk
    sample_version: str | None = None


def shadow_comparison(conn: Connection, f: Filters) -> Shadow:
    """Shadow predictions paired with the live card of the same hook call (as monitoring pairs
    them): agreement on the risk band, mean absolute risk difference, the band cross-table and a
    bounded sample of (live, shadow) risk pairs for a scatter plot. ``model_version`` selects the
    shadow version when it is one."""
    s, live = V_CARDS.alias("s"), V_CARDS.alias("l")
    join = s.join(
        live,
        sa.and_(
            live.c.hook_instance == s.c.hook_instance,
            live.c.service_id == s.c.service_id,
            live.c.environment == s.c.environment,
            live.c.role == "live",
        ),
    )
    conds = [
        s.c.role == "shadow",
        s.c.service_id == f.service_id,
        s.c.environment == f.environment,
        s.c.requested_at >= f.start_at,
        s.c.requested_at < f.end_at,
    ]
    out = Shadow()
    same = sa.func.coalesce(s.c.risk_band, "") == sa.func.coalesce(live.c.risk_band, "")
    both = sa.and_(s.c.risk.is_not(None), live.c.risk.is_not(None))
    rows = conn.execute(
        sa.select(
            s.c.model_version,
            sa.func.count(),
            _count_if(same),
            _count_if(both),
            sa.func.avg(sa.case((both, sa.func.abs(s.c.risk - live.c.risk)), else_=None)),
        )
        .select_from(join)
        .where(*conds)
        .group_by(s.c.model_version)
        .limit(20)
    )
    for version, pairs, agree, n_both, diff in rows:
        out.versions.append(
            ShadowVersion(
                version, int(pairs), int(agree), int(n_both), None if diff is None else float(diff)
            )
        )
    if not out.versions:
        return out
    out.versions.sort(key=lambda v: _version_key(v.version))
    chosen = f.model_version if f.model_version in {v.version for v in out.versions} else None
    out.sample_version = chosen or out.versions[-1].version
    conds.append(s.c.model_version == out.sample_version)
    for lb, sb, n in conn.execute(
        sa.select(live.c.risk_band, s.c.risk_band, sa.func.count())
        .select_from(join)
        .where(*conds)
        .group_by(live.c.risk_band, s.c.risk_band)
        .limit(400)
    ):
        out.bands[(lb or "(none)", sb or "(none)")] = int(n)
    out.sample = [
        (float(a), float(b))
        for a, b in conn.execute(
            sa.select(live.c.risk, s.c.risk)
            .select_from(join)
            .where(*conds, both)
            .order_by(s.c.requested_at.desc())
            .limit(LIMIT_SCATTER)
        )
    ]
    return out


# --- monitoring results -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowKey:
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        days = (self.end - self.start).total_seconds() / 86400
        if days <= 1 and self.start.hour == 0 and self.end.hour == 0:
            return f"{self.start:%d %b}"
        last = self.end - timedelta(seconds=1)
        return f"{self.start:%d %b}–{last:%d %b}"


@dataclass(slots=True)
class Windows:
    """The monitoring windows chosen for the selection: (version, window) -> latest run id."""

    lengths: list[int]  # available window lengths, seconds
    length: int | None  # chosen
    version: str | None  # the model version whose figures are shown
    versions: list[str]
    runs: dict[WindowKey, str] = field(default_factory=dict)

    @property
    def keys(self) -> list[WindowKey]:
        return sorted(self.runs, key=lambda k: k.start)


def _run_length(parameters: str | None, start: datetime, end: datetime) -> int:
    try:
        seconds = json.loads(parameters or "{}").get("window_seconds")
    except (ValueError, AttributeError):
        seconds = None
    if isinstance(seconds, int | float) and seconds > 0:
        return int(seconds)
    return int((end - start).total_seconds())


def monitoring_windows(conn: Connection, f: Filters) -> Windows:
    r, m = MONITORING_RESULTS, MONITORING_RUNS
    conds = [
        r.c.service_id == f.service_id,
        r.c.environment == f.environment,
        r.c.role == f.role,
        r.c.metric == "volume",
        r.c.subgroup == "",
        r.c.window_end > f.start_at,
        r.c.window_start < f.end_at,
    ]
    if f.model_version:
        conds.append(r.c.model_version == f.model_version)
    rows = conn.execute(
        sa.select(
            r.c.model_version,
            r.c.window_start,
            r.c.window_end,
            r.c.run_id,
            m.c.started_at,
            m.c.parameters,
        )
        .select_from(r.join(m, m.c.run_id == r.c.run_id))
        .where(*conds)
        .order_by(r.c.window_start.desc())
        .limit(LIMIT_WINDOWS)
    ).all()
    lengths: set[int] = set()
    latest_version: tuple[datetime, str] | None = None
    entries = []
    for version, ws, we, run_id, started, params in rows:
        ws, we = utc(ws), utc(we)
        length = _run_length(params, ws, we)
        lengths.add(length)
        entries.append((version, WindowKey(ws, we), run_id, utc(started), length))
        if latest_version is None or we > latest_version[0]:
            latest_version = (we, version)
    versions = sorted({e[0] for e in entries}, key=_version_key)
    out = Windows(sorted(lengths), None, None, versions)
    if not entries:
        return out
    out.version = f.model_version or (latest_version[1] if latest_version else None)
    if f.window_seconds in lengths:
        out.length = f.window_seconds
    else:
        # The shortest length with at least two windows (a time series), else the shortest.
        per_length: dict[int, set[WindowKey]] = defaultdict(set)
        for version, key, _run, _started, length in entries:
            if version == out.version:
                per_length[length].add(key)
        series = [n for n, keys in per_length.items() if len(keys) >= 2]
        out.length = min(series or per_length or lengths)
    best: dict[WindowKey, tuple[datetime, str]] = {}
    for version, key, run_id, started, length in entries:
        if version != out.version or length != out.length:
            continue
        if key not in best or started > best[key][0]:
            best[key] = (started, run_id)
    out.runs = {k: v[1] for k, v in best.items()}
    return out


@dataclass(frozen=True, slots=True)
class Figure:
    window: WindowKey
    metric: str
    feature: str
    subgroup: str
    value: float | None
    n: int
    details: str


def monitoring_figures(
    conn: Connection,
    f: Filters,
    w: Windows,
    view: sa.TableClause,
    metrics: Iterable[str],
    *,
    role: str | None = None,
) -> list[Figure]:
    """The figures of the chosen windows (latest run each) from one monitoring view."""
    if not w.runs or w.version is None:
        return []
    run_ids = sorted(set(w.runs.values()))
    rows = conn.execute(
        sa.select(
            view.c.window_start,
            view.c.window_end,
            view.c.run_id,
            view.c.metric,
            view.c.feature,
            view.c.subgroup,
            view.c.value,
            view.c.n,
            view.c.details,
        )
        .where(
            view.c.service_id == f.service_id,
            view.c.environment == f.environment,
            view.c.role == (role or f.role),
            view.c.model_version == w.version,
            view.c.run_id.in_(run_ids),
            view.c.metric.in_(list(metrics)),
            view.c.window_end > f.start_at,
            view.c.window_start < f.end_at,
        )
        .limit(LIMIT_RESULTS)
    )
    out = []
    for ws, we, run_id, metric, feature, subgroup, value, n, details in rows:
        key = WindowKey(utc(ws), utc(we))
        if w.runs.get(key) != run_id:
            continue  # superseded by a later run, or a window of another length
        number = None if value is None or not math.isfinite(value) else float(value)
        out.append(Figure(key, metric, feature or "", subgroup or "", number, int(n), details))
    return out


def details_of(fig: Figure) -> dict[str, Any]:
    try:
        data = json.loads(fig.details or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(slots=True)
class CalibrationBin:
    lo: float
    hi: float
    n: int
    predicted: float
    observed: float


def pooled_calibration(figures: Iterable[Figure]) -> list[CalibrationBin]:
    """calibration_bin rows of several windows pooled per bin (weighted by their n)."""
    acc: dict[int, list[float]] = {}
    for fig in figures:
        if fig.metric != "calibration_bin" or fig.value is None:
            continue
        d = details_of(fig)
        try:
            b, lo, hi = int(d["bin"]), float(d["lo"]), float(d["hi"])
            predicted = float(d["predicted"])
        except (KeyError, TypeError, ValueError):
            continue
        a = acc.setdefault(b, [lo, hi, 0.0, 0.0, 0.0])
        a[2] += fig.n
        a[3] += fig.n * predicted
        a[4] += fig.n * fig.value
    return [
        CalibrationBin(a[0], a[1], int(a[2]), a[3] / a[2], a[4] / a[2])
        for _b, a in sorted(acc.items())
        if a[2] > 0
    ]


@dataclass(slots=True)
class SubgroupRow:
    subgroup: str
    figures: dict[str, tuple[float | None, int]]  # metric -> (n-weighted mean or sum, n)


SUBGROUP_SUMS = ("volume", "outcomes")


def pooled_subgroups(figures: Iterable[Figure]) -> list[SubgroupRow]:
    """Per subgroup and metric over the windows: sums for counts, n-weighted means otherwise."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for fig in figures:
        if not fig.subgroup:
            continue
        a = acc[fig.subgroup].setdefault(fig.metric, [0.0, 0.0, 0.0])  # weighted sum, n, n_value
        a[1] += fig.n
        if fig.value is not None:
            a[0] += fig.value if fig.metric in SUBGROUP_SUMS else fig.value * fig.n
            a[2] += fig.n
    out = []
    for name in sorted(acc, key=_subgroup_key):
        figs: dict[str, tuple[float | None, int]] = {}
        for metric, (total, n, n_value) in acc[name].items():
            if metric in SUBGROUP_SUMS:
                figs[metric] = (total, int(n))
            else:
                figs[metric] = (total / n_value if n_value else None, int(n))
        out.append(SubgroupRow(name, figs))
    return out


def _subgroup_key(name: str) -> tuple[str, float, str]:
    kind, _, rest = name.partition("=")
    lo = rest.split("-", 1)[0]
    try:
        return kind, float(lo), rest
    except ValueError:
        return kind, 0.0, rest


# --- alerts and deployments -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertItem:
    created_at: datetime
    window: WindowKey
    model_version: str
    metric: str
    feature: str
    subgroup: str
    value: float | None
    threshold: float | None
    severity: str
    message: str


def alerts(conn: Connection, f: Filters) -> list[AlertItem]:
    a = V_ALERTS
    conds = [
        a.c.service_id == f.service_id,
        a.c.environment == f.environment,
        a.c.window_end > f.start_at,
        a.c.window_start < f.end_at,
    ]
    if f.model_version:
        conds.append(a.c.model_version == f.model_version)
    rows = conn.execute(
        sa.select(
            a.c.created_at,
            a.c.window_start,
            a.c.window_end,
            a.c.model_version,
            a.c.metric,
            a.c.feature,
            a.c.subgroup,
            a.c.value,
            a.c.threshold,
            a.c.severity,
            a.c.message,
        )
        .where(*conds)
        .order_by(a.c.window_start.desc(), a.c.alert_id.desc())
        .limit(LIMIT_ALERTS)
    )
    return [
        AlertItem(
            utc(r[0]), WindowKey(utc(r[1]), utc(r[2])), r[3], r[4], r[5] or "", r[6] or "", *r[7:]
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class DeploymentItem:
    seq: int
    created_at: datetime
    model_version: str
    role: str
    action: str
    decided_by: str
    reason: str
    override: bool
    override_reason: str | None
    artifact_sha256: str
    record_hash: str
    gate: str  # short summary of the validation evidence


def _gate_summary(evidence: str | None) -> str:
    try:
        data = json.loads(evidence or "{}")
    except ValueError:
        return ""
    if not isinstance(data, dict):
        return ""
    parts = []
    failures = data.get("failures")
    metrics = data.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("auroc"), int | float):
        rows = data.get("rows")
        parts.append(
            f"AUROC {metrics['auroc']:.3f}" + (f" on {rows} held-out rows" if rows else "")
        )
    if isinstance(failures, list):
        parts.insert(0, "gate passed" if not failures else f"gate failed ({len(failures)})")
    return ", ".join(parts)


def deployments(conn: Connection, model_name: str | None, environment: str) -> list[DeploymentItem]:
    if model_name is None:
        return []
    d = V_DEPLOYMENTS
    rows = conn.execute(
        sa.select(
            d.c.seq,
            d.c.created_at,
            d.c.model_version,
            d.c.role,
            d.c.action,
            d.c.decided_by,
            d.c.reason,
            d.c.override,
            d.c.override_reason,
            d.c.artifact_sha256,
            d.c.record_hash,
            d.c.evidence,
        )
        .where(d.c.model_name == model_name, d.c.environment == environment)
        .order_by(d.c.seq.desc())
        .limit(LIMIT_DEPLOYMENTS)
    )
    return [
        DeploymentItem(
            seq=int(r.seq),
            created_at=utc(r.created_at),
            model_version=r.model_version,
            role=r.role,
            action=r.action,
            decided_by=r.decided_by,
            reason=r.reason,
            override=bool(r.override),
            override_reason=r.override_reason,
            artifact_sha256=r.artifact_sha256,
            record_hash=r.record_hash,
            gate=_gate_summary(r.evidence),
        )
        for r in rows
    ]


# --- everything for one page ------------------------------------------------------------------

DRIFT_METRICS = ("psi", "ks_statistic", "ks_pvalue", "prediction_psi", "reference_too_small")
PERFORMANCE_METRICS = (
    "auroc",
    "auprc",
    "brier",
    "calibration_intercept",
    "calibration_slope",
    "ece",
    "outcomes",
    "prevalence",
    "volume",
)
SUBGROUP_METRICS = ("volume", "alert_rate", "outcomes", "prevalence", "auroc", "brier")


@dataclass(slots=True)
class DashboardData:
    filters: Filters
    volume: list[DayVolume]
    latency_ms: float | None
    histogram: Histogram
    missing: list[MissingRate]
    feedback: Feedback
    outcomes: tuple[int, int]
    shadow: Shadow
    windows: Windows
    drift: list[Figure]
    performance: list[Figure]
    calibration: list[CalibrationBin]
    subgroups: list[SubgroupRow]
    alerts: list[AlertItem]
    deployments: list[DeploymentItem]
    model_name: str | None
    feature_labels: dict[str, str]
    gate: dict[str, Any]

    @property
    def total_cards(self) -> int:
        return sum(d.cards for d in self.volume)


def collect(engine: Engine, registry: Registry, f: Filters) -> DashboardData:
    hook_def = registry.services.get(f.service_id)
    model_name = hook_def.model if hook_def else None
    with engine.connect() as conn:
        if model_name is None:
            row = conn.execute(
                sa.select(V_CARDS.c.model_name).where(V_CARDS.c.service_id == f.service_id).limit(1)
            ).first()
            model_name = row[0] if row else None
        windows = monitoring_windows(conn, f)
        version = windows.version or f.model_version or _serving_version(registry, hook_def)
        model = registry.models.get((model_name or "", version or ""))
        if model is None and hook_def is not None:
            model = registry.models.get((hook_def.model, hook_def.model_version))
        features: list[tuple[str, str, bool]] = []
        labels: dict[str, str] = {}
        reference: dict[str, float] = {}
        gate: dict[str, Any] = {}
        if model is not None:
            features = [(ft.name, ft.label, ft.required) for ft in model.spec.features]
            labels = {ft.name: ft.label for ft in model.spec.features}
            for name, ref in (model.manifest.get("reference") or {}).items():
                if isinstance(ref, dict) and isinstance(ref.get("missing_rate"), int | float):
                    reference[name] = float(ref["missing_rate"])
            gate = dict(model.manifest.get("gate") or {})
        performance = monitoring_figures(conn, f, windows, V_PERFORMANCE, PERFORMANCE_METRICS)
        return DashboardData(
            filters=f,
            volume=volume_by_day(conn, f),
            latency_ms=latency_mean(conn, f),
            histogram=risk_histogram(conn, f, hook_def),
            missing=missing_rates(conn, f, features, reference),
            feedback=feedback(conn, f),
            outcomes=outcome_counts(conn, f),
            shadow=shadow_comparison(conn, f),
            windows=windows,
            drift=monitoring_figures(conn, f, windows, V_DRIFT, DRIFT_METRICS),
            performance=performance,
            calibration=pooled_calibration(
                monitoring_figures(conn, f, windows, V_CALIBRATION, ("calibration_bin",))
            ),
            subgroups=pooled_subgroups(
                monitoring_figures(conn, f, windows, V_SUBGROUPS, SUBGROUP_METRICS)
            ),
            alerts=alerts(conn, f),
            deployments=deployments(conn, model_name, f.environment),
            model_name=model_name,
            feature_labels=labels,
            gate=gate,
        )


def _serving_version(registry: Registry, hook_def: HookDefinition | None) -> str | None:
    if hook_def is None:
        return None
    return registry.model_for(hook_def).version
