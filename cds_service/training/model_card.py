"""Model card in Markdown, generated from the spec, the training config and the measured metrics.

Generated rather than hand-written so that the numbers a clinician reads are the numbers the
held-out evaluation produced for exactly this artifact.
"""

from __future__ import annotations

from typing import Any

from cds_service.training.config import TrainingConfig
from fhir_mappers.spec import ModelSpec
from fhir_mappers.timeutil import format_duration


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _metric_row(name: str, m: dict[str, Any]) -> str:
    prevalence = "n/a" if m.get("prevalence") is None else f"{100 * m['prevalence']:.1f}%"
    cells = [
        name,
        str(m["n"]),
        str(m["positives"]),
        prevalence,
        _fmt(m.get("auroc")),
        _fmt(m.get("auprc")),
        _fmt(m.get("brier")),
        _fmt(m.get("calibration_intercept")),
        _fmt(m.get("calibration_slope")),
        _fmt(m.get("ece")),
    ]
    return "| " + " | ".join(cells) + " |"


_HEADER = (
    "| group | n | events | prevalence | AUROC | AUPRC | Brier | calibration intercept "
    "| calibration slope | ECE |\n|---|---|---|---|---|---|---|---|---|---|"
)


def render_model_card(spec: ModelSpec, cfg: TrainingConfig, manifest: dict[str, Any]) -> str:
    metrics = manifest["metrics"]
    data = manifest["training_data"]
    lines = [
        f"# Model card: {spec.title} ({spec.name} {manifest['version']})",
        "",
        f"> {spec.description}",
        "",
        "**Synthetic training data.** This version was trained on a synthetic FHIR cohort that the "
        "project generates (`python -m cds_devtools synth`). Its figures show that the pipeline "
        "works; they say nothing about real patients.",
        "",
        "## Intended use",
        "",
        cfg.card.get("intended_use", ""),
        "",
        f"**Users:** {cfg.card.get('users', '')}",
        "",
        f"**Population:** {cfg.card.get('population', '')}",
        "",
        "## Must not be used for",
        "",
        cfg.card.get("must_not", ""),
        "",
        "## Outcome",
        "",
        f"`{spec.label.name}`: {spec.label.description}",
        "",
        "## Inputs",
        "",
        "| feature | description | unit | window | aggregation | required |",
        "|---|---|---|---|---|---|",
    ]
    for f in spec.features:
        window = (
            f"{format_duration(f.window.start)} .. {format_duration(f.window.end)}"
            if f.window
            else "at index time"
        )
        if f.relative_to == "anchor":
            window += f" from the {spec.index.resource} {spec.index.anchor}, up to the index time"
        lines.append(
            f"| {f.label} | {f.description} | {f.unit or ''} | {window} | {f.aggregation} "
            f"| {'yes' if f.required else 'no'} |"
        )
    splits = metrics["splits"]
    lines += [
        "",
        "## Data",
        "",
        f"- Export sha256: `{data['export_sha256']}`",
        f"- Training table sha256: `{data['table_sha256']}`",
        f"- Patients: {data['patients']}, prediction rows: {data['rows']} "
        f"({data['positives']} with the outcome), none dropped; rows lacking a required input "
        f"(trained on, not calibrated or evaluated on, shown no risk by the service): "
        f"{data['unscorable_rows']} ({data['unscorable_positives']} with the outcome)",
        "- Split by patient: "
        + ", ".join(
            f"{k} {v['rows']} rows ({v['scored_rows']} scored) / {v['patients']} patients"
            for k, v in splits.items()
        ),
        "",
        "## Performance on the held-out test split (rows the service scores)",
        "",
        _HEADER,
        _metric_row("all", metrics["test"]),
        "",
        "## Subgroups (test split)",
        "",
        _HEADER,
    ]
    for name, m in metrics["subgroups"].items():
        lines.append(_metric_row(name, m))
    lines += [
        "",
        "## Calibration (test split, deciles of predicted risk)",
        "",
        "| n | mean predicted | observed |",
        "|---|---|---|",
    ]
    for b in metrics["calibration_curve"]:
        lines.append(f"| {b['n']} | {b['predicted']:.3f} | {b['observed']:.3f} |")
    cal = manifest["calibration"]
    lines += [
        "",
        f"Calibration method: Platt scaling of the LightGBM margin (a = {cal['a']:.4f}, "
        f"b = {cal['b']:.4f}), fitted on the calibration split only.",
        "",
        "## Contributing factors on the card",
        "",
        "The card lists the recorded inputs that moved this patient's estimate most, each with "
        "its effect in percentage points of risk. Method: the input's TreeSHAP contribution to "
        "the LightGBM margin, scaled by the calibration slope a to calibrated log-odds, then "
        "converted around the estimate: effect = p − σ(logit(p) − contribution), i.e. how much "
        "lower or higher the estimate would be with that input at its training average. "
        "Missing inputs are never listed as factors; when their combined effect is 1 percentage "
        "point or more the card says so in one sentence. Values are written by the feature "
        "spec's display rules (`[features.show]`).",
        "",
        "## Artifact",
        "",
        f"- Model file `{manifest['artifact']['file']}`, sha256 `{manifest['artifact']['sha256']}`",
        f"- Feature spec sha256 `{manifest['feature_spec_sha256']}`",
        f"- Code sha256 `{manifest['code']['code_sha256']}`",
        "- Libraries: " + ", ".join(f"{k} {v}" for k, v in manifest["libraries"].items()),
        "",
        "## Limitations",
        "",
        cfg.card.get("limitations", ""),
        "",
    ]
    return "\n".join(lines)
