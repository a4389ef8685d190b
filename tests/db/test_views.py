"""The quality views have exactly the columns cds_service/db/views.py declares: in the migrated
database (SQLite and PostgreSQL) and in the docs the quality team reads."""

from __future__ import annotations

import re

import sqlalchemy as sa

from cds_service.db.views import VIEWS
from cds_service.paths import PROJECT_ROOT
from tests.utils.service import Database

DOCS = PROJECT_ROOT / "docs"
RESULT_VIEWS = ("v_drift", "v_performance", "v_calibration", "v_subgroups")


def test_migrated_views_have_the_declared_columns(migrated: Database) -> None:
    inspector = sa.inspect(migrated.engine)
    assert sorted(inspector.get_view_names()) == sorted(VIEWS)
    for name, view in VIEWS.items():
        assert [c["name"] for c in inspector.get_columns(name)] == list(view.c.keys()), name


def test_the_dashboard_queries_the_declared_views() -> None:
    """No module of the dashboard's query layer declares a view of its own."""
    import importlib
    import pkgutil

    from cds_service.web.dashboard import queries

    seen = set()
    for info in pkgutil.iter_modules(queries.__path__):
        module = importlib.import_module(f"{queries.__name__}.{info.name}")
        for attr, value in vars(module).items():
            if isinstance(value, sa.TableClause) and value.name.startswith("v_"):
                assert value is VIEWS[value.name], f"{info.name}.{attr}"
                seen.add(value.name)
    assert seen == set(VIEWS)  # the dashboard reads every view


def _names(span: str) -> list[str]:
    """`a, b (note), c` -> [a, b, c]."""
    return [part.strip() for part in re.sub(r"\([^)]*\)", "", span).split(",") if part.strip()]


def _quality_views_doc() -> dict[str, list[str]]:
    """Columns per view in docs/quality-views.md: a section per view, its columns either as the
    first cell of a table or as one backticked list."""
    text = (DOCS / "quality-views.md").read_text(encoding="utf-8")
    out = {}
    for match in re.finditer(r"^## `(v_\w+)`.*?$(.*?)(?=^## |\Z)", text, re.M | re.S):
        body = match.group(2)
        rows = re.findall(r"^\| (`.*?) \|", body, re.M)
        if rows:
            out[match.group(1)] = [n for row in rows for n in re.findall(r"`(\w+)`", row)]
        else:
            out[match.group(1)] = _names(re.search(r"`([^`]+)`", body).group(1))  # type: ignore[union-attr]
    return out


def _monitoring_doc() -> dict[str, list[str]]:
    """Columns per view in docs/monitoring.md's table of views (the last backticked list of a
    row), and the shared columns of the results views."""
    text = (DOCS / "monitoring.md").read_text(encoding="utf-8")
    out = {}
    for name, row in re.findall(r"^\| `(v_\w+)` \|(.*)\|$", text, re.M):
        spans = re.findall(r"`([^`]*,[^`]*)`", row)
        if spans:
            out[name] = _names(spans[-1])
    shared = re.search(r"The results views \(.*?\) all have\s*`([^`]+)`", text, re.S)
    assert shared is not None
    for name in RESULT_VIEWS:
        out[name] = _names(shared.group(1).replace("\n", " "))
    return out


def test_docs_list_the_declared_columns() -> None:
    documented = {**_monitoring_doc(), **_quality_views_doc()}
    assert sorted(documented) == sorted(VIEWS)
    for name, view in VIEWS.items():
        assert documented[name] == list(view.c.keys()), name
