"""The local signing key of the quick start: ``keys init``, ``token`` and ``demo-call``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cds_service.cli.common import (
    fail,
    hook_definitions,
    local_issuer,
    local_issuer_path,
    local_key_path,
)
from cds_service.cli.exit_codes import ExitCode

if TYPE_CHECKING:
    from pathlib import Path

    import httpx

    from cds_service.config import Settings
    from cds_service.serving.hook_defs import HookDefinition

keys_app = typer.Typer(help="Local signing key for the quick start.", no_args_is_help=True)

_NO_KEY = "no local key: run `cds-service keys init` first"


@keys_app.command("init")
def keys_init(
    iss: Annotated[str, typer.Option(help="Issuer of the local caller.")] = "",
    fhir_server: Annotated[
        list[str] | None, typer.Option(help="FHIR base URL this caller may send (repeatable).")
    ] = None,
) -> None:
    """Create a local ES384 signing key and a trusted-callers entry for it (development)."""
    from cds_service.config import Settings

    key_path, path = write_local_caller(Settings(), iss, fhir_server or [])
    typer.echo(f"private key: {key_path}")
    typer.echo(f"trusted callers: {path} (issuer {local_issuer()}); restart the service to load it")


def write_local_caller(
    settings: Settings, iss: str = "", fhir_servers: list[str] | None = None
) -> tuple[Path, Path]:
    """A new local ES384 key and its trusted-callers entry (replacing one of the same issuer);
    ``serve`` calls this on a first start in development."""
    import json

    from cds_service.security.local_issuer import (
        LOCAL_ISSUER,
        generate_key,
        public_jwks,
        save_private_key,
    )

    issuer = iss or LOCAL_ISSUER
    key = generate_key("ES384")
    save_private_key(key, local_key_path())
    local_issuer_path().write_text(issuer + "\n", encoding="utf-8")
    path = settings.trusted_issuers_path
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    entries = [e for e in entries if e.get("iss") != issuer]
    entries.append({"iss": issuer, "jwks": public_jwks(key), "fhir_servers": fhir_servers or []})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    return local_key_path(), path


_URL_HELP = (
    "The service's public base URL (default: CDS_PUBLIC_BASE_URL, else where the last "
    "`cds-service serve` said it serves)."
)


def token(
    path: Annotated[
        str, typer.Argument(help="Endpoint path, e.g. /cds-services/ed-admission-risk")
    ],
    lifetime: Annotated[int, typer.Option(help="Seconds until expiry.")] = 300,
    url: Annotated[str | None, typer.Option(help=_URL_HELP)] = None,
) -> None:
    """Print a JWT signed with the local key for one endpoint (audience = its full URL)."""
    from cds_service.cli.first_run import service_url
    from cds_service.security.local_issuer import load_private_key, sign

    if not local_key_path().is_file():
        raise fail(_NO_KEY, ExitCode.BAD_INPUT)
    aud = service_url(url) + "/" + path.lstrip("/")
    typer.echo(
        sign(load_private_key(local_key_path()), iss=local_issuer(), aud=aud, lifetime=lifetime)
    )


def demo_call(
    service_id: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    url: Annotated[str | None, typer.Option(help=_URL_HELP)] = None,
) -> None:
    """Send a signed example call to each service of a running server; print the cards.

    The example for a service follows its model, taken from the hook definitions in
    CDS_HOOKS_DIR (the same ones the server reads); a service without one is skipped. Exits 8
    when every call failed, 5 when the service cannot be reached.
    """
    import httpx

    from cds_service.cli.first_run import service_url
    from cds_service.security.local_issuer import load_private_key, sign

    if not local_key_path().is_file():
        raise fail(_NO_KEY, ExitCode.BAD_INPUT)
    # One URL for both: where the calls go and the audience they are signed for.
    base = service_url(url)
    key = load_private_key(local_key_path())
    definitions = hook_definitions()

    def bearer(endpoint: str) -> dict[str, str]:
        return {
            "Authorization": "Bearer " + sign(key, iss=local_issuer(), aud=f"{base}/{endpoint}")
        }

    answered = failed = 0
    with httpx.Client(timeout=10) as client:
        for svc in _discover(client, base, bearer("cds-services")):
            if service_id and svc.get("id") != service_id:
                continue
            hook_def = definitions.get(str(svc.get("id")))
            if hook_def is None:
                typer.echo(f"{svc.get('id')}: skipped (no hook definition for it in CDS_HOOKS_DIR)")
                continue
            headers = bearer(f"cds-services/{hook_def.id}")
            if _call_one(client, base, hook_def, headers):
                answered += 1
            else:
                failed += 1
    if failed and not answered:
        raise fail(f"all {failed} call(s) failed", ExitCode.CALLS_FAILED)
    if service_id and not (answered or failed):
        raise fail(f"the service does not offer {service_id!r}", ExitCode.BAD_INPUT)


def _unreachable(base: str, exc: Exception) -> typer.Exit:
    message = f"cannot reach {base} ({type(exc).__name__}): is it serving? (cds-service serve)"
    return fail(message, ExitCode.UNREACHABLE)


def _discover(client: httpx.Client, base: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    import httpx

    try:
        listing = client.get(f"{base}/cds-services", headers=headers)
    except httpx.HTTPError as exc:
        raise _unreachable(base, exc) from None
    if listing.status_code != 200:
        message = f"discovery at {base}/cds-services answered {listing.status_code}: {listing.text}"
        raise fail(message, ExitCode.BAD_INPUT)
    try:
        services = listing.json()["services"]
    except (ValueError, KeyError, TypeError):
        raise fail(
            f"{base}/cds-services is not a CDS Hooks discovery", ExitCode.BAD_INPUT
        ) from None
    if not isinstance(services, list):
        raise fail(f"{base}/cds-services is not a CDS Hooks discovery", ExitCode.BAD_INPUT)
    return [s for s in services if isinstance(s, dict)]


def _call_one(
    client: httpx.Client, base: str, hook_def: HookDefinition, headers: dict[str, str]
) -> bool:
    """One signed example call; True when it answered 200 with its cards."""
    from datetime import UTC, datetime

    import httpx

    from cds_service.cds_hooks.examples import example_request

    body = example_request(hook_def.id, hook_def.hook, hook_def.model, datetime.now(UTC))
    try:
        r = client.post(f"{base}/cds-services/{hook_def.id}", json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise _unreachable(base, exc) from None
    typer.echo(f"{hook_def.id}: HTTP {r.status_code}")
    if r.status_code != 200:
        typer.echo(f"  {r.text}")
        return False
    try:
        cards = r.json()["cards"]
    except (ValueError, KeyError, TypeError):
        typer.echo("  not a CDS Hooks response (no 'cards')")
        return False
    for card in cards:
        typer.echo(f"  [{card.get('indicator')}] {card.get('summary')}")
    return True
