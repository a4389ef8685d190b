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
    import httpx

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
    save_private_key(key, local_key_path())
    local_issuer_path().write_text(issuer + "\n", encoding="utf-8")
    path = settings.trusted_issuers_path
    entries = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    entries = [e for e in entries if e.get("iss") != issuer]
    entries.append({"iss": issuer, "jwks": public_jwks(key), "fhir_servers": fhir_server or []})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    typer.echo(f"private key: {local_key_path()} (kid {key.kid})")
    typer.echo(f"trusted callers: {path} (issuer {issuer}); restart the service to load it")


def token(
    path: Annotated[
        str, typer.Argument(help="Endpoint path, e.g. /cds-services/ed-admission-risk")
    ],
    lifetime: Annotated[int, typer.Option(help="Seconds until expiry.")] = 300,
) -> None:
    """Print a JWT signed with the local key for one endpoint (audience = its full URL)."""
    from cds_service.config import Settings
    from cds_service.security.local_issuer import load_private_key, sign

    if not local_key_path().is_file():
        raise fail(_NO_KEY, ExitCode.BAD_INPUT)
    settings = Settings()
    aud = settings.public_base_url + "/" + path.lstrip("/")
    typer.echo(
        sign(load_private_key(local_key_path()), iss=local_issuer(), aud=aud, lifetime=lifetime)
    )


def demo_call(
    service_id: Annotated[str | None, typer.Argument(help="One service (default: all).")] = None,
    url: Annotated[str | None, typer.Option(help="Base URL (default CDS_PUBLIC_BASE_URL).")] = None,
) -> None:
    """Send a signed example call to each service of a running server; print the cards.

    The example for a service follows its model, taken from the hook definitions in
    CDS_HOOKS_DIR (the same ones the server reads); a service without one is skipped.
    """
    import httpx

    from cds_service.config import Settings
    from cds_service.security.local_issuer import load_private_key, sign

    if not local_key_path().is_file():
        raise fail(_NO_KEY, ExitCode.BAD_INPUT)
    settings = Settings()
    base = (url or settings.public_base_url).rstrip("/")
    key = load_private_key(local_key_path())
    definitions = hook_definitions()

    def bearer(endpoint: str) -> dict[str, str]:
        aud = f"{settings.public_base_url}/{endpoint}"
        return {"Authorization": "Bearer " + sign(key, iss=local_issuer(), aud=aud)}

    with httpx.Client(timeout=10) as client:
        for svc in _discover(client, base, bearer("cds-services")):
            if service_id and svc["id"] != service_id:
                continue
            hook_def = definitions.get(svc["id"])
            if hook_def is None:
                typer.echo(f"{svc['id']}: skipped (no hook definition for it in CDS_HOOKS_DIR)")
                continue
            headers = bearer(f"cds-services/{svc['id']}")
            _call_one(client, base, hook_def, headers)


def _discover(client: httpx.Client, base: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    import httpx

    try:
        listing = client.get(f"{base}/cds-services", headers=headers)
    except httpx.HTTPError as exc:
        message = f"cannot reach {base} ({type(exc).__name__}): is it serving?"
        raise fail(message, ExitCode.UNREACHABLE) from exc
    if listing.status_code != 200:
        message = f"discovery answered {listing.status_code}: {listing.text}"
        raise fail(message, ExitCode.BAD_INPUT)
    services: list[dict[str, Any]] = listing.json()["services"]
    return services


def _call_one(
    client: httpx.Client, base: str, hook_def: HookDefinition, headers: dict[str, str]
) -> None:
    from datetime import UTC, datetime

    from cds_service.cds_hooks.examples import example_request

    body = example_request(hook_def.id, hook_def.hook, hook_def.model, datetime.now(UTC))
    r = client.post(f"{base}/cds-services/{hook_def.id}", json=body, headers=headers)
    typer.echo(f"{hook_def.id}: HTTP {r.status_code}")
    if r.status_code == 200:
        for card in r.json()["cards"]:
            typer.echo(f"  [{card['indicator']}] {card['summary']}")
    else:
        typer.echo(f"  {r.text}")
