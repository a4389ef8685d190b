"""Exit codes of ``cds-service``: numbered once, never reused, so scripts and CI can rely on them.

1 is left to Python itself (an unhandled exception); 2 is Typer's usage error, also used by the
commands that moved to ``python -m cds_devtools``.
"""

from __future__ import annotations

from enum import IntEnum, unique


@unique
class ExitCode(IntEnum):
    OK = 0
    USAGE = 2
    BAD_INPUT = 3  # bad input or configuration
    TRAINING = 4  # training failed its own checks
    UNREACHABLE = 5  # the service did not answer
    GATE = 6  # promotion refused by the validation gate
    CHAIN = 7  # deployment chain broken
    CALLS_FAILED = 8  # every call to the service was refused or failed
    FAIRNESS = 9  # a fairness ratio outside the rule (cds-service fairness)
