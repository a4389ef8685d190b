"""Serving: ``serve`` and ``example``."""

from __future__ import annotations

from typing import Annotated

import typer

from cds_service.cli.common import fail, hook_definitions
from cds_service.cli.exit_codes import ExitCode


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.", envvar="CDS_HOST")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", envvar="CDS_PORT")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the CDS Hooks services (settings from CDS_* environment variables).

    The public URL (JWT audience, links in cards) follows --host/--port unless
    CDS_PUBLIC_BASE_URL is set. In development, a first start without trusted callers sets up a
    local development caller (as `keys init` does) and prints where to go next.
    """
    import uvicorn
    from pydantic import ValidationError

    from cds_service.cli.first_run import prepare
    from cds_service.config import Settings

    try:
        Settings()
        prepare(host, port)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        raise fail(f"invalid settings: {first['msg']}", ExitCode.BAD_INPUT) from exc
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


def example(
    service_id: Annotated[str, typer.Argument(help="CDS service id (see GET /cds-services).")],
) -> None:
    """Print a synthetic CDS Hooks request (with prefetch, times relative to now) for a service."""
    from datetime import UTC, datetime

    import orjson

    from cds_service.cds_hooks.examples import example_request

    services = hook_definitions()
    hook_def = services.get(service_id)
    if hook_def is None:
        raise fail(f"unknown service id; known: {sorted(services)}", ExitCode.BAD_INPUT)
    body = example_request(service_id, hook_def.hook, hook_def.model, datetime.now(UTC))
    typer.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
