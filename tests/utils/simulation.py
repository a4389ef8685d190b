"""A real, signed service on loopback driven by ``cds_devtools.simulate`` over simulated days:
the set-up the simulation and the estimated-performance tests share."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import respx

from cds_devtools.simulate import SimulationReport, run_simulation
from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter
from cds_service.config import Settings
from cds_service.main import create_app
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from tests.utils.server import ServerThread
from tests.utils.service import PUBLIC_BASE, Database, make_settings, new_database

ISS = "urn:cds-risk:simulator"


@contextmanager
def simulated(
    backend: str, tmp: Path, cohort: Path, **options: Any
) -> Iterator[tuple[SimulationReport, Database, Settings]]:
    """Run the simulation (``options``: days, shift, cohort_patients, monitor_window_days ...)
    against a service that trusts only the simulator's key; the service stays up, and the
    database open, until the block ends."""
    db = new_database(backend, tmp)
    key = generate_key("ES384")
    callers = tmp / "callers.json"
    callers.write_text(json.dumps([{"iss": ISS, "jwks": public_jwks(key), "fhir_servers": []}]))
    settings = make_settings(
        db.url, tmp, auth_disabled=False, trusted_issuers=callers, allow_simulated_time=True
    )
    app = create_app(settings, transport=httpx.MockTransport(respx.MockRouter().async_handler))
    try:
        with ServerThread(app) as server:
            report = run_simulation(
                base_url=server.url,
                public_base_url=PUBLIC_BASE,
                engine=db.engine,
                writer=AuditWriter(db.engine, Spool(tmp / "spool-sim")),
                models_dir=settings.models_dir,
                pseudonym_key=settings.effective_pseudonym_key,
                workdir=cohort,
                sign=lambda aud: sign(key, iss=ISS, aud=aud),
                **options,
            )
            yield report, db, settings
    finally:
        db.close()
