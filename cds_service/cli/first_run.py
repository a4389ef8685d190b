"""What ``serve`` does before it starts in development, so that the first command shows the way:
a local development caller when there are no trusted callers (what ``keys init`` does), the public
URL taken from ``--host``/``--port`` unless ``CDS_PUBLIC_BASE_URL`` is set (and recorded, so the
other commands find the service), and one message with the URLs and the next command.

Acceptance and production never get here without trusted callers: their settings refuse to load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cds_service.paths import data_dir

if TYPE_CHECKING:
    from cds_service.config import Settings

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_ANY_INTERFACE = ("0.0.0.0", "::", "")  # noqa: S104 (names of the wildcard, not a bind)
DEV_DASHBOARD_USER = "local-developer"


def served_url_path() -> Path:
    """Where ``serve`` records the URL it derived, for ``token`` and ``demo-call``."""
    return data_dir() / "served-url.txt"


def public_url_from_bind(host: str, port: int) -> str | None:
    """``CDS_PUBLIC_BASE_URL`` for this bind, set in the environment (the workers read it) when
    unset; returns the derived URL, or None when the setting was given."""
    if os.environ.get("CDS_PUBLIC_BASE_URL"):
        return None
    shown = "127.0.0.1" if host in _ANY_INTERFACE else host
    if ":" in shown:
        shown = f"[{shown}]"
    url = f"http://{shown}:{port}"
    os.environ["CDS_PUBLIC_BASE_URL"] = url
    return url


def record_served_url(url: str) -> None:
    try:
        path = served_url_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(url + "\n", encoding="utf-8")
    except OSError:
        pass  # a read-only data folder: the other commands fall back to the default URL


def service_url(given: str | None = None) -> str:
    """Where the service is, the same for every command that talks to it: ``--url``, else
    ``CDS_PUBLIC_BASE_URL``, else the URL the last ``serve`` recorded, else the default."""
    from cds_service.config import Settings

    if given:
        return given.rstrip("/")
    if os.environ.get("CDS_PUBLIC_BASE_URL"):
        return Settings().public_base_url
    path = served_url_path()
    if path.is_file():
        recorded = path.read_text(encoding="utf-8").strip()
        if recorded.startswith(("http://", "https://")):
            return recorded.rstrip("/")
    return Settings().public_base_url


def development_defaults(host: str) -> None:
    """On loopback in development, the dashboard opens for a local user unless sign-in is set."""
    from cds_service.config import Settings

    settings = Settings()
    if settings.environment.value != "development" or host not in _LOOPBACK:
        return
    if not settings.oidc_issuer and not settings.oidc_client_id:
        os.environ.setdefault("CDS_DASHBOARD_DEV_USER", DEV_DASHBOARD_USER)


def local_caller_needed(settings: Settings) -> bool:
    return (
        settings.environment.value == "development"
        and not settings.auth_disabled
        and not settings.trusted_issuers_path.is_file()
    )


def welcome(settings: Settings, created: str | None) -> str:
    """The one message of a development start: where things are and what to run next."""
    base = settings.public_base_url
    lines = []
    if created:
        lines.append(f"No trusted callers yet: set up a local development caller ({created}).")
    lines += [
        f"CDS risk service (development) at {base}",
        f"  discovery:  {base}/cds-services  (CDS Hooks; every call needs a signed JWT)",
        "  a card:     cds-service demo-call  (in another terminal: signed example calls)",
        f"  try it:     {base}/tryit  (pick a synthetic patient and a service, see the card)",
        f"  dashboard:  {base}/dashboard",
    ]
    return "\n".join(lines)


def prepare(host: str, port: int) -> None:
    """Everything before uvicorn starts; prints the welcome once (not once per worker)."""
    from cds_service.cli.keys import write_local_caller
    from cds_service.config import Settings

    derived = public_url_from_bind(host, port)
    development_defaults(host)
    settings = Settings()
    if derived is not None:
        record_served_url(settings.public_base_url)
    if settings.environment.value != "development":
        return
    created = None
    if local_caller_needed(settings):
        key_path, callers = write_local_caller(settings)
        created = f"key {key_path}, trusted callers {callers}"
    typer.echo(welcome(settings, created))
