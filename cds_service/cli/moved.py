"""``synth`` and ``simulate`` moved to ``python -m cds_devtools``: a one-line pointer, exit 2.

They need ``cds_devtools``, which stays out of the wheel, so the installed ``cds-service`` could
not run them. The pointer stays because generated model cards and older notes still say
``cds-service synth``; 2 is the code Typer gives any other unusable command line.
"""

from __future__ import annotations

import sys

import typer

from cds_service.cli.exit_codes import ExitCode

MOVED_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}


def _moved(name: str, ctx: typer.Context) -> typer.Exit:
    args = " ".join(ctx.args)
    sys.stderr.write(
        f"error: `cds-service {name}` moved: run `python -m cds_devtools {name}"
        f"{' ' + args if args else ''}` from a checkout of the project\n"
    )
    return typer.Exit(int(ExitCode.USAGE))


def synth(ctx: typer.Context) -> None:
    """Moved: python -m cds_devtools synth."""
    raise _moved("synth", ctx)


def simulate(ctx: typer.Context) -> None:
    """Moved: python -m cds_devtools simulate."""
    raise _moved("simulate", ctx)
