"""``python -m cds_service.cli``: the same app as the ``cds-service`` script (bench uses it)."""

from cds_service.cli import app

app(prog_name="cds-service")
