"""``python -m cds_devtools synth ...`` / ``python -m cds_devtools simulate ...``."""

from cds_devtools.cli import app

app(prog_name="python -m cds_devtools")
