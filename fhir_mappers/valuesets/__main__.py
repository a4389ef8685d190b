"""``python -m fhir_mappers.valuesets --markdown``: print docs/terminology.md for review."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fhir_mappers.valuesets.markdown import models_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fhir_mappers.valuesets")
    parser.add_argument("--markdown", action="store_true", help="print the terminology table")
    parser.add_argument("--models", type=Path, default=Path("models"), help="models folder")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_usage(sys.stderr)
        return 2
    sys.stdout.write(models_markdown(args.models))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
