"""The ``cds-service`` command: one entry point for people, CI and hospital IT.

One module per command group; this one only builds the app. Exit codes are in
:mod:`cds_service.cli.exit_codes`. The developer tools (``synth``, ``simulate``) are
``python -m cds_devtools``, outside the wheel.
"""

from __future__ import annotations

import typer

from cds_service.cli import data, keys, lifecycle, monitor, moved, serve
from cds_service.cli import quality as quality_cli
from cds_service.cli import report as report_cli
from cds_service.cli import retention as retention_cli
from cds_service.cli.db import db_app
from cds_service.cli.exit_codes import ExitCode

__all__ = ["ExitCode", "app"]

app = typer.Typer(
    help="Clinical risk cards over CDS Hooks: training, serving and the model lifecycle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Training data and training.
app.command()(data.train)
app.command()(data.table)
app.command()(data.profile)
# Serving and the quick start.
app.command()(serve.serve)
app.command()(serve.example)
app.add_typer(keys.keys_app, name="keys")
app.command()(keys.token)
app.command("demo-call")(keys.demo_call)
# Lifecycle and monitoring.
app.command()(lifecycle.promote)
app.command()(lifecycle.rollback)
app.command()(lifecycle.retire)
app.add_typer(lifecycle.audit_app, name="audit")
app.command()(lifecycle.outcomes)
app.command()(monitor.monitor)
app.add_typer(db_app, name="db")
# Moved to python -m cds_devtools (hidden; a pointer for old notes and model cards).
app.command(hidden=True, context_settings=moved.MOVED_SETTINGS)(moved.synth)
app.command(hidden=True, context_settings=moved.MOVED_SETTINGS)(moved.simulate)
# Retention: archive to Parquet, purge, record in the trail.
lifecycle.audit_app.command("purge")(retention_cli.purge)
# Evidence for the quality team.
app.command()(quality_cli.thresholds)
app.command()(quality_cli.fairness)
# Reports from SQL (post-market surveillance, applied model card).
app.add_typer(report_cli.report_app, name="report")
