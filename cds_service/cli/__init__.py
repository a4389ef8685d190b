"""The ``cds-service`` command: one entry point for people, CI and hospital IT.

Exit codes are numbered and never reused: 0 ok, 2 usage (Typer), 3 bad input or configuration,
4 training failed its own checks, 5 service unreachable, 6 promotion refused by the validation
gate, 7 deployment chain broken.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from cds_service.paths import data_dir, models_dir

app = typer.Typer(
    help="Clinical risk cards over CDS Hooks: synthetic data, training and serving.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 3
EXIT_TRAINING = 4
EXIT_GATE = 6
EXIT_CHAIN = 7


def _err(message: str, code: int) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Output folder (FHIR Bulk NDJSON).")] = Path(
        "data/synth"
    ),
    ed_patients: Annotated[int, typer.Option(help="Patients in the ED cohort.")] = 4000,
    post_mi_patients: Annotated[int, typer.Option(help="Patients in home monitoring.")] = 800,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same bytes.")] = 20261123,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate the synthetic FHIR cohort (no clinical truth; see docs/synthetic-data.md)."""
    from cds_devtools.synth import generate_cohort

    counts = generate_cohort(
        out,
        ed_patients=ed_patients,
        post_mi_patients=post_mi_patients,
        seed=seed,
        progress=progress,
    )
    for rtype, count in counts.items():
        typer.echo(f"{rtype}: {count}")
    typer.echo(f"written to {out}")


@app.command()
def train(
    model: Annotated[str, typer.Argument(help="Model folder name under models/.")],
    export: Annotated[
        Path | None, typer.Option(help="FHIR Bulk export folder (default: training.toml).")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Version (default: training.toml).")] = None,
    models: Annotated[Path | None, typer.Option(help="Models root folder.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train, calibrate and evaluate a model; write its artifact, manifest and model card."""
    from cds_service.training.config import ConfigError
    from cds_service.training.train import train_model
    from fhir_mappers.spec import SpecError

    root = models or models_dir()
    if not (root / model / "features.toml").is_file():
        raise _err(f"no models/{model}/features.toml under {root}", EXIT_BAD_INPUT)
    try:
        result = train_model(
            model, models_dir=root, export_dir=export, version=version, progress=progress
        )
    except (SpecError, ConfigError, FileNotFoundError) as exc:
        raise _err(str(exc), EXIT_BAD_INPUT) from exc
    except ValueError as exc:
        raise _err(str(exc), EXIT_TRAINING) from exc
    test = result.manifest["metrics"]["test"]
    typer.echo(f"model: {result.directory}")
    typer.echo(f"sha256: {result.model_sha256}")
    typer.echo(
        f"test AUROC {test['auroc']}, AUPRC {test['auprc']}, Brier {test['brier']}, "
        f"calibration intercept {test['calibration_intercept']}, "
        f"slope {test['calibration_slope']}"
    )


@app.command()
def table(
    model: Annotated[str, typer.Argument(help="Model folder name under models/.")],
    export: Annotated[Path, typer.Option(help="FHIR Bulk export folder.")] = Path("data/synth"),
    out: Annotated[Path | None, typer.Option(help="CSV to write.")] = None,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Build the training table (one row per index event, with the label) as CSV."""
    from fhir_mappers.bulk import write_training_table
    from fhir_mappers.spec import load_spec

    spec = load_spec(models_dir() / model / "features.toml")
    target = out or data_dir() / "tables" / f"{model}.csv"
    stats = write_training_table(export, spec, target, progress=progress)
    typer.echo(
        f"{target}: {stats.rows} rows, {stats.positives} positives, "
        f"{stats.dropped_missing_required} dropped for missing required inputs, "
        f"{stats.resources} resources from {stats.patients} patients"
    )
    if stats.warnings:
        typer.echo(
            "mapper warnings: " + ", ".join(f"{k}={v}" for k, v in sorted(stats.warnings.items()))
        )


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the CDS Hooks services (settings from CDS_* environment variables)."""
    import uvicorn
    from pydantic import ValidationError

    from cds_service.config import Settings

    try:
        Settings()
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        raise _err(f"invalid settings: {first['msg']}", EXIT_BAD_INPUT) from exc
    uvicorn.run(
        "cds_service.asgi:app",
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        access_log=False,
        factory=True,
        log_config=None,
    )


@app.command()
def example(
    service_id: Annotated[str, typer.Argument(help="CDS service id (see GET /cds-services).")],
) -> None:
    """Print a synthetic CDS Hooks request (with prefetch, times relative to now) for a service."""
    from datetime import UTC, datetime

    import orjson

    from cds_service.cds_hooks.examples import example_request
    from cds_service.config import Settings
    from cds_service.serving.hook_defs import HookDefinitionError
    from cds_service.serving.registry import load_registry

    settings = Settings()
    try:
        registry = load_registry(settings.hooks_dir, settings.models_dir)
    except (HookDefinitionError, OSError, ValueError) as exc:
        raise _err(str(exc), EXIT_BAD_INPUT) from exc
    hook_def = registry.services.get(service_id)
    if hook_def is None:
        raise _err(f"unknown service id; known: {sorted(registry.services)}", EXIT_BAD_INPUT)
    body = example_request(service_id, hook_def.hook, hook_def.model, datetime.now(UTC))
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


keys_app = typer.Typer(help="Local signing key for the quick start.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _local_key_path() -> Path:
    return data_dir() / "keys" / "local-signing-key.json"


def _local_issuer() -> str:
    """The issuer `keys init` registered the local key under (default: the built-in one)."""
    from cds_service.security.local_issuer import LOCAL_ISSUER

    path = data_dir() / "keys" / "local-issuer.txt"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else LOCAL_ISSUER


@keys_app.command("init")
def keys_init(
    iss: Annotated[str, typer.Option(help="Issuer of the local caller.")] = "",
    fhir_server: Annotated[
        list[str] | None, typer.Option(help="FHIR base URL this caller may send (repeatable).")
    ] = None,
) -> None:
    """Create a local ES384 signing key and a trusted-callers entry for it (development)."""
    import json

    from cds_service.config import Settings
    from cds_service.security.local_issuer import (
        LOCAL_ISSUER,
        generate_key,
        public_jwks,
        save_private_key,
    )

    issuer = iss or LOCAL_ISSUER
    settings = Settings()
    key = generate_key("ES384")
    save_private_key(key, _local_key_path())
    (data_dir() / "keys" / "local-issuer.txt").write_text(issuer + "\n", encoding="utf-8")
    path = settings.trusted_issuers_path
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    entries = [e for e in entries if e.get("iss") != issuer]
    entries.append({"iss": issuer, "jwks": public_jwks(key), "fhir_servers": fhir_server or []})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"private key: {_local_key_path()} (kid {key.kid})")
    typer.echo(f"trusted callers: {path} (issuer {issuer}); restart the service to load it")


@app.command()
def token(
    path: Annotated[
        str, typer.Argument(help="Endpoint path, e.g. /cds-services/ed-admission-risk")
    ],
    lifetime: Annotated[int, typer.Option(help="Seconds until expiry.")] = 300,
) -> None:
    """Print a JWT signed with the local key for one endpoint (audience = its full URL)."""
    from cds_service.config import Settings
    from cds_service.security.local_issuer import load_private_key, sign

    if not _local_key_path().is_file():
        raise _err("no local key: run `cds-service keys init` first", EXIT_BAD_INPUT)
    settings = Settings()
    aud = settings.public_base_url + "/" + path.lstrip("/")
    typer.echo(
        sign(load_private_key(_local_key_path()), iss=_local_issuer(), aud=aud, lifetime=lifetime)
    )


@app.command("demo-call")
def demo_call(
    service_id: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    url: Annotated[str | None, typer.Option(help="Base URL (default CDS_PUBLIC_BASE_URL).")] = None,
) -> None:
    """Send a signed example call to each service of a running server; print the cards."""
    from datetime import UTC, datetime

    import httpx

    from cds_service.cds_hooks.examples import example_request
    from cds_service.config import Settings
    from cds_service.security.local_issuer import load_private_key, sign

    if not _local_key_path().is_file():
        raise _err("no local key: run `cds-service keys init` first", EXIT_BAD_INPUT)
    settings = Settings()
    base = (url or settings.public_base_url).rstrip("/")
    key = load_private_key(_local_key_path())
    with httpx.Client(timeout=10) as client:
        discovery_aud = settings.public_base_url + "/cds-services"
        headers = {"Authorization": "Bearer " + sign(key, iss=_local_issuer(), aud=discovery_aud)}
        try:
            listing = client.get(f"{base}/cds-services", headers=headers)
        except httpx.HTTPError as exc:
            raise _err(f"cannot reach {base} ({type(exc).__name__}): is it serving?", 5) from exc
        if listing.status_code != 200:
            raise _err(f"discovery answered {listing.status_code}: {listing.text}", EXIT_BAD_INPUT)
        for svc in listing.json()["services"]:
            if service_id and svc["id"] != service_id:
                continue
            model = "post-mi-unplanned-visit" if "post-mi" in svc["id"] else "ed-admission"
            body = example_request(svc["id"], svc["hook"], model, datetime.now(UTC))
            aud = f"{settings.public_base_url}/cds-services/{svc['id']}"
            headers = {"Authorization": "Bearer " + sign(key, iss=_local_issuer(), aud=aud)}
            r = client.post(f"{base}/cds-services/{svc['id']}", json=body, headers=headers)
            typer.echo(f"{svc['id']}: HTTP {r.status_code}")
            if r.status_code == 200:
                for card in r.json()["cards"]:
                    typer.echo(f"  [{card['indicator']}] {card['summary']}")
            else:
                typer.echo(f"  {r.text}")


def _engine() -> Engine:
    from cds_service.config import Settings
    from cds_service.db.engine import make_engine, upgrade

    engine = make_engine(Settings().database_url)
    upgrade(engine)
    return engine


Env = Annotated[str, typer.Option("--env", help="acceptance | production | development")]
By = Annotated[str, typer.Option("--by", help="Who decides (name or user id).")]
Reason = Annotated[str, typer.Option("--reason", help="Why (recorded in the audit trail).")]


@app.command()
def promote(
    model: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument()],
    env: Env,
    by: By,
    reason: Reason,
    role: Annotated[str, typer.Option(help="live (cards shown) or shadow (logged only)")] = "live",
    holdout: Annotated[
        Path | None, typer.Option(help="Held-out FHIR Bulk export for the validation gate.")
    ] = None,
    override_reason: Annotated[
        str | None, typer.Option(help="Promote despite a failed gate (recorded as override).")
    ] = None,
) -> None:
    """Run the validation gate and record a deployment of MODEL VERSION."""
    from cds_service.lifecycle.deployments import ENVIRONMENTS, ROLES
    from cds_service.lifecycle.promotion import PromotionRefused
    from cds_service.lifecycle.promotion import promote as do_promote

    if env not in ENVIRONMENTS or role not in ROLES:
        raise _err(f"--env one of {ENVIRONMENTS}, --role one of {ROLES}", EXIT_BAD_INPUT)
    export = holdout or data_dir() / "holdout"
    if not export.is_dir():
        raise _err(f"no held-out export at {export} (use --holdout)", EXIT_BAD_INPUT)
    try:
        result = do_promote(
            _engine(),
            models_dir(),
            model,
            version,
            environment=env,
            role=role,
            by=by,
            reason=reason,
            holdout=export,
            override_reason=override_reason,
        )
    except PromotionRefused as exc:
        typer.echo(exc.evidence.get("report", ""))
        raise _err("promotion refused by the validation gate: " + str(exc), EXIT_GATE) from exc
    except (ValueError, FileNotFoundError) as exc:
        raise _err(str(exc), EXIT_BAD_INPUT) from exc
    rec = result.record
    typer.echo(json.loads(rec["evidence"]).get("report", ""))
    note = " (gate overridden)" if rec["override"] else ""
    typer.echo(f"recorded: {model} {version} {role} in {env}{note}, record {rec['record_hash']}")


@app.command()
def rollback(
    model: Annotated[str, typer.Argument()],
    env: Env,
    by: By,
    reason: Reason,
    to: Annotated[
        str | None, typer.Option(help="Version to make live (default: previous).")
    ] = None,
) -> None:
    """Make the previous live version live again (recorded like a promotion)."""
    from cds_service.lifecycle.promotion import rollback as do_rollback

    try:
        rec = do_rollback(
            _engine(), models_dir(), model, environment=env, by=by, reason=reason, to_version=to
        )
    except ValueError as exc:
        raise _err(str(exc), EXIT_BAD_INPUT) from exc
    typer.echo(f"recorded: {model} {rec['model_version']} live again in {env}")


@app.command()
def retire(
    model: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Argument()],
    env: Env,
    by: By,
    reason: Reason,
) -> None:
    """Stop a shadow version (recorded)."""
    from cds_service.lifecycle.promotion import retire_shadow

    retire_shadow(_engine(), models_dir(), model, version, environment=env, by=by, reason=reason)
    typer.echo(f"recorded: {model} {version} retired in {env}")


audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the hash chain of the deployment records."""
    from cds_service.lifecycle.deployments import all_records, verify_chain

    engine = _engine()
    problems = verify_chain(engine)
    if problems:
        for problem in problems:
            typer.echo(problem)
        raise _err(f"deployment chain broken ({len(problems)} problem(s))", EXIT_CHAIN)
    typer.echo(f"deployment chain intact ({len(all_records(engine))} records)")


@app.command()
def outcomes(
    export: Annotated[Path, typer.Option(help="FHIR Bulk export with the outcome encounters.")],
) -> None:
    """Derive outcomes for audited cards from a FHIR export (keyed by audit pseudonyms)."""
    from cds_service.audit.spool import Spool
    from cds_service.audit.writer import AuditWriter
    from cds_service.config import Settings
    from cds_service.lifecycle.outcomes import derive_outcomes

    settings = Settings()
    engine = _engine()
    writer = AuditWriter(engine, Spool(settings.spool_dir))
    stats = derive_outcomes(engine, writer, models_dir(), export, settings.effective_pseudonym_key)
    typer.echo(
        f"cards considered {stats.cards_considered}, outcomes written {stats.outcomes_written}, "
        f"window still open {stats.window_still_open}, positives {stats.by_label}"
    )


@app.command()
def monitor(
    days: Annotated[int, typer.Option(help="Monitor the last N days.")] = 7,
    window_hours: Annotated[
        float | None, typer.Option(help="Split into windows of H hours (default: one window).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End (ISO 8601, default now).")] = None,
) -> None:
    """Compute volume, drift, performance, calibration, subgroups, feedback and shadow agreement
    into SQL; threshold breaches become alerts."""
    from datetime import UTC, datetime, timedelta

    from cds_service.monitoring.run import recent_windows, run_monitoring

    now = datetime.fromisoformat(until) if until else datetime.now(UTC)
    if now.tzinfo is None:
        raise _err("--until needs a UTC offset", EXIT_BAD_INPUT)
    if window_hours:
        # Complete windows aligned to UTC multiples: reruns see the same windows (no re-alerts).
        start, end, step = recent_windows(now, days=days, window_hours=window_hours)
        report = run_monitoring(
            _engine(), models_dir(), window_start=start, window_end=end, window=step
        )
    else:
        report = run_monitoring(
            _engine(), models_dir(), window_start=now - timedelta(days=days), window_end=now
        )
    typer.echo(report.summary())


@app.command()
def simulate(
    url: Annotated[str, typer.Option(help="Base URL of the running service.")] = (
        "http://127.0.0.1:8000"
    ),
    days: Annotated[int, typer.Option(help="Simulated days.")] = 28,
    shift: Annotated[str, typer.Option(help="none | lactate-unit | population")] = "none",
    shift_day: Annotated[int, typer.Option(help="Inject the shift from this day on.")] = 14,
    patients: Annotated[int, typer.Option(help="Synthetic ED cohort size.")] = 20000,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic cohort.")] = 20261123,
    sign: Annotated[bool, typer.Option(help="Sign calls with the local key (keys init).")] = True,
) -> None:
    """Replay synthetic ED visits as signed calls over simulated days, post feedback, derive
    outcomes and run the monitor (the service needs CDS_ALLOW_SIMULATED_TIME=true)."""
    from cds_devtools.simulate import run_simulation
    from cds_service.audit.spool import Spool
    from cds_service.audit.writer import AuditWriter
    from cds_service.config import Settings
    from cds_service.security.local_issuer import load_private_key
    from cds_service.security.local_issuer import sign as sign_token

    settings = Settings()
    signer = None
    if sign:
        if not _local_key_path().is_file():
            raise _err("no local key: run `cds-service keys init` (or --no-sign)", EXIT_BAD_INPUT)
        key = load_private_key(_local_key_path())

        def signer(aud: str) -> str:
            return sign_token(key, iss=_local_issuer(), aud=aud)

    engine = _engine()
    report = run_simulation(
        base_url=url,
        public_base_url=settings.public_base_url,
        engine=engine,
        writer=AuditWriter(engine, Spool(settings.spool_dir)),
        models_root=models_dir(),
        pseudonym_key=settings.effective_pseudonym_key,
        workdir=data_dir() / "simulation",
        sign=signer,
        days=days,
        shift=shift,
        shift_day=shift_day,
        cohort_patients=patients,
        seed=seed,
    )
    typer.echo(
        f"calls {report.calls} {report.status_counts}, cards {report.cards}, "
        f"feedback {report.feedback}"
    )
    if report.outcomes:
        typer.echo(f"outcomes written {report.outcomes.outcomes_written}")
    typer.echo(report.monitor_summary)
    typer.echo("drift alerts: " + (", ".join(report.drift_alerts) or "none"))


db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the audit database at CDS_DATABASE_URL to REVISION."""
    from cds_service.config import Settings
    from cds_service.db.engine import make_engine, upgrade

    upgrade(make_engine(Settings().database_url), revision)
    typer.echo(f"database at {revision}")


if __name__ == "__main__":  # pragma: no cover
    app()
