"""What building one risk card costs, with and without the RiskAssessment suggestion.

The card stage of a call: factors in percentage points, values by the display rules, the texts in
the deployment's language, and, where the hook asks, the FHIR RiskAssessment validated with
fhir.resources. The peer is the same card without the suggestion, in the same run; the bundled
ED model's real prediction on the quick-start example patient, in English and in Dutch.

Benchmarks print figures; they never assert. ``PYTHONPATH=$PWD python bench/card_build.py``.
"""

from __future__ import annotations

import argparse
import timeit
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cds_service.cds_hooks.cards import CardModelInfo, CardWording, Subject, risk_card
from cds_service.cds_hooks.examples import ed_case
from cds_service.serving.hook_defs import load_hook_definitions
from cds_service.serving.model_runtime import load_model
from fhir_mappers.extract import extract
from fhir_mappers.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)
UUID = "5b3a0c1e-61a4-4e3b-9a77-0b8f1f0c2a11"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=2000, help="cards per timing")
    args = parser.parse_args()
    hooks = {
        d.id: d
        for d in load_hook_definitions(
            ROOT / "hooks", lambda m: load_spec(ROOT / "models" / m / "features.toml")
        )
    }
    hook = hooks["ed-admission-risk"]
    model = load_model(ROOT / "models", "ed-admission", "1.0.0")
    case = ed_case(NOW)
    arrival = NOW - timedelta(minutes=50)
    resources = [case["patient"], *case["observations"], *case["encounters"]]
    extraction = extract(resources, NOW, model.spec, anchor=arrival)
    prediction = model.explain(extraction.vector(model.feature_names))
    info = CardModelInfo(model.name, model.version, model.artifact_sha256, model.spec)
    print(f"cards per timing: {args.number}, best of 5")
    for lang in ("en", "nl"):
        wording = CardWording(hook.card.localized(lang))
        for label, subject in (("without suggestion", None), ("with RiskAssessment", Subject("p"))):

            def build(subject: Subject | None = subject, wording: CardWording = wording) -> None:
                risk_card(
                    hook,
                    wording,
                    info,
                    extraction,
                    prediction,
                    card_uuid=UUID,
                    model_card_url="https://cds.example.org/m",
                    environment="production",
                    subject=subject,
                )

            best = min(timeit.repeat(build, number=args.number, repeat=5)) / args.number
            print(f"{lang}  {label:<20} {best * 1e3:7.3f} ms per card")


if __name__ == "__main__":
    main()
