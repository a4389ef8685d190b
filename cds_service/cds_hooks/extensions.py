"""Names of the request extensions this service understands (CDS Hooks 2.0 ``extension``)."""

from __future__ import annotations

# Lets the simulator (``python -m cds_devtools simulate``) replay calls at simulated times; the
# service honours it only in development with ``CDS_ALLOW_SIMULATED_TIME=true``.
SIMULATED_TIME_EXTENSION = "org.cds-risk.simulated-time"
