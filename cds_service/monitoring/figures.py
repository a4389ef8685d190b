"""The figures of one group in one window: drift, prediction drift, performance, subgroups,
feedback and shadow agreement, each with the alerts its thresholds call for.

docs/monitoring.md explains each figure; the metric names are those the views select.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import ks_2samp

from cds_service.monitoring.accumulate import WindowAccumulator
from cds_service.monitoring.report import GroupKey
from cds_service.monitoring.results import WindowResults
from cds_service.monitoring.thresholds import PERFORMANCE_METRICS, Thresholds
from cds_service.stats import (
    PSI_EPSILON,
    SAMPLE_SEED,
    FloatArray,
    ReferenceBins,
    binary_metrics,
    calibration_bins,
    decile_bins,
    psi,
    subgroup_masks,
)

__all__ = [
    "Baselines",
    "drift",
    "feedback",
    "performance",
    "prediction_drift",
    "shadow",
    "subgroup_volume",
]

# The prediction-drift baseline of each group: bins and where they came from.
Baselines = dict[GroupKey, tuple[ReferenceBins, dict[str, Any]]]

_NO_SECOND_CLASS = "one outcome class only"
_REASONS = {
    "auroc": _NO_SECOND_CLASS,
    "auprc": _NO_SECOND_CLASS,
    "calibration_intercept": _NO_SECOND_CLASS,
    "calibration_slope": "one outcome class only or fewer than 20 outcomes",
}


def _psi_details(counts: Any, bins: ReferenceBins, n: int) -> dict[str, Any]:
    return {
        "bins": bins.bins,
        "window_fractions": [round(float(c) / n, 6) for c in counts],
        "reference_fractions": [round(float(f), 6) for f in bins.fractions],
        "epsilon": PSI_EPSILON,
    }


def _psi_alert(
    w: WindowResults, t: Thresholds, metric: str, value: float, n: int, feature: str = ""
) -> None:
    warning, critical = (
        (t.psi_warning, t.psi_critical)
        if metric == "psi"
        else (t.prediction_psi_warning, t.prediction_psi_critical)
    )
    if n < t.psi_min_n or value <= warning:
        return
    if value > critical:
        w.alert(metric, value, critical, "critical", "above", n, feature=feature)
    else:
        w.alert(metric, value, warning, "warning", "above", n, feature=feature)


def _missing_rate(w: WindowResults, t: Thresholds, feature: str, missing: int, rows: int) -> None:
    ref = w.ctx.reference.get(feature, {})
    rate = missing / rows
    w.row("missing_rate", rate, rows, feature=feature, details={"missing": missing})
    ref_rate = ref.get("missing_rate")
    if ref_rate is None:
        return
    w.row("missing_rate_reference", float(ref_rate), int(ref.get("n") or 0), feature=feature)
    if rows >= t.missing_min_n and rate - ref_rate > t.missing_rate_excess:
        w.alert(
            "missing_rate",
            rate,
            ref_rate + t.missing_rate_excess,
            "warning",
            "above",
            rows,
            feature=feature,
        )


def _ks(
    w: WindowResults, t: Thresholds, feature: str, window: FloatArray, ref: FloatArray, n: int
) -> None:
    res = ks_2samp(window, ref)
    details = {
        "sample_n": len(window),
        "reference_sample_n": len(ref),
        "sampled": len(window) < n,
        "sample_seed": SAMPLE_SEED,
    }
    w.row("ks_statistic", float(res.statistic), n, feature=feature, details=details)
    pvalue = float(res.pvalue)
    w.row("ks_pvalue", pvalue, n, feature=feature, details=details)
    if n >= t.ks_min_n and pvalue < t.ks_pvalue:
        w.alert("ks_pvalue", pvalue, t.ks_pvalue, "warning", "below", n, feature=feature)


def _distribution(
    w: WindowResults, t: Thresholds, acc: WindowAccumulator, j: int, present: int
) -> dict[str, str]:
    """PSI and KS of feature ``j``; returns the figures skipped, with why."""
    ctx, feature = w.ctx, w.ctx.features[j]
    if present < t.min_values:
        reason = f"the window has {present} value(s), fewer than {t.min_values}"
        return {"psi": reason, "ks": reason}
    skipped: dict[str, str] = {}
    bins, counts = ctx.bins.get(feature), acc.bin_counts[j]
    if bins is None or counts is None:
        skipped["psi"] = ctx.bin_reasons.get(feature, "no reference bins")
    else:
        value = psi(counts, bins.fractions)
        w.row("psi", value, present, feature=feature, details=_psi_details(counts, bins, present))
        _psi_alert(w, t, "psi", value, present, feature)
    sample = ctx.samples.get(feature, np.empty(0))
    if len(sample) < t.min_reference_sample:
        skipped["ks"] = (
            f"the reference sample has {len(sample)} value(s), fewer than {t.min_reference_sample}"
        )
    else:
        _ks(w, t, feature, acc.samples[j].values, sample, present)
    return skipped


def drift(w: WindowResults, t: Thresholds, acc: WindowAccumulator) -> None:
    """Per feature: missing rate against training, then PSI and KS against the reference."""
    for j, feature in enumerate(w.ctx.features):
        missing = int(acc.missing[j])
        _missing_rate(w, t, feature, missing, acc.rows)
        present = acc.rows - missing
        skipped = _distribution(w, t, acc, j, present)
        if skipped:
            ref_n = int(w.ctx.reference.get(feature, {}).get("n") or 0)
            w.skipped(skipped, present, feature, reference_n=ref_n)


def prediction_drift(
    w: WindowResults, t: Thresholds, risks: FloatArray, baselines: Baselines
) -> None:
    """Risk distribution vs the manifest's ``prediction_reference`` when it has one, else vs
    the decile bins of the run's first window with at least psi_min_n predictions."""
    g, n = w.group, len(risks)
    baseline = baselines.get(g)
    if baseline is None and w.ctx.prediction_reference is not None:
        baseline = (w.ctx.prediction_reference, {"reference": "manifest prediction_reference"})
        baselines[g] = baseline
    if baseline is None:
        need = max(t.min_values, t.psi_min_n)
        if n >= need:
            info = {"reference": "first window", "reference_window_start": w.start.isoformat()}
            baselines[g] = (decile_bins(risks), info)
        else:
            reason = f"no baseline yet (needs a window with {need} predictions); {n} here"
            w.skipped({"prediction_psi": reason}, n)
        return
    bins, info = baseline
    if n < t.min_values:
        w.skipped({"prediction_psi": f"{n} prediction(s), fewer than {t.min_values}"}, n)
        return
    counts = bins.counts(risks)
    value = psi(counts, bins.fractions)
    w.row("prediction_psi", value, n, details={**info, **_psi_details(counts, bins, n)})
    _psi_alert(w, t, "prediction_psi", value, n)


def _gate_alerts(w: WindowResults, t: Thresholds, m: dict[str, Any], n: int) -> None:
    """AUROC and calibration-in-the-large against the thresholds, else the model's gate."""
    gate = w.ctx.gate
    min_auroc = t.min_auroc if t.min_auroc is not None else gate.get("min_auroc")
    if min_auroc is not None and m["auroc"] is not None and m["auroc"] < min_auroc:
        w.alert("auroc", m["auroc"], float(min_auroc), "critical", "below", n)
    max_int = t.max_abs_calibration_intercept
    if max_int is None:
        max_int = gate.get("max_abs_calibration_intercept")
    cal = m["calibration_intercept"]
    if max_int is not None and cal is not None and abs(cal) > max_int:
        w.alert("calibration_intercept", cal, float(max_int), "warning", "outside ±", n)


def _metrics(w: WindowResults, t: Thresholds, y: FloatArray, p: FloatArray, subgroup: str) -> None:
    m = binary_metrics(y, p)
    n = int(m["n"])
    w.row("outcomes", n, n, subgroup=subgroup, details={"positives": m["positives"]})
    for metric in PERFORMANCE_METRICS:
        value = m[metric]
        details: dict[str, Any] = {}
        if value is None:
            details["reason"] = _REASONS.get(metric, "no outcomes")
        if metric == "prevalence":
            details["mean_predicted"] = m["mean_predicted"]
        w.row(metric, value, n, subgroup=subgroup, details=details)
    if not subgroup and n >= t.min_outcomes:
        _gate_alerts(w, t, m, n)


def performance(w: WindowResults, t: Thresholds, acc: WindowAccumulator) -> None:
    """Discrimination and calibration on the cards with an outcome, whole group and subgroups."""
    p, y, sex, age = acc.performance_inputs()
    if not len(p):
        return
    _metrics(w, t, y, p, "")
    for b in calibration_bins(y, p):
        w.row("calibration_bin", b["observed"], int(b["n"]), feature=f"bin={b['bin']}", details=b)
    ctx = w.ctx
    masks = subgroup_masks(
        sex if ctx.sex_index is not None else None,
        age if ctx.age_index is not None else None,
        ctx.age_bands,
    )
    for name, mask in masks.items():
        if mask.any():
            _metrics(w, t, y[mask], p[mask], name)


def subgroup_volume(w: WindowResults, acc: WindowAccumulator) -> None:
    for name, (cards, risk_cards, alerting) in sorted(acc.subgroup_counts.items()):
        if cards:
            w.row("volume", cards, cards, subgroup=name)
        if risk_cards:
            w.row("alert_rate", alerting / risk_cards, risk_cards, subgroup=name)


def feedback(w: WindowResults, entries: list[tuple[str, str | None, str | None, int]]) -> None:
    """Acceptance and override rates of the feedback on the window's cards, with the reasons."""
    total = sum(e[3] for e in entries)
    if not total:
        return
    accepted = sum(e[3] for e in entries if e[0] == "accepted")
    overridden = sum(e[3] for e in entries if e[0] == "overridden")
    reasons: dict[str, int] = {}
    for outcome, code, display, n in entries:
        if outcome == "overridden":
            reason = code or display or "(none given)"
            reasons[reason] = reasons.get(reason, 0) + n
    w.row("acceptance_rate", accepted / total, total, details={"accepted": accepted})
    w.row(
        "override_rate",
        overridden / total,
        total,
        details={"overridden": overridden, "reasons": reasons},
    )


def shadow(w: WindowResults, row: Any) -> None:
    """How often a shadow model agrees with the live card, and by how much it differs."""
    pairs, agree, both, abs_diff = int(row[0]), int(row[1]), int(row[2]), row[3]
    if pairs:
        w.row("shadow_agreement", agree / pairs, pairs, details={"same_band": agree})
    if both and abs_diff is not None:
        w.row("shadow_mean_abs_diff", float(abs_diff) / both, both)
