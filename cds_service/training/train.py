"""Bulk export -> table -> LightGBM -> Platt calibration -> held-out evaluation -> artifacts.

Reproducibility is a regulatory requirement: the same export and configuration give a
byte-identical model file (LightGBM in deterministic, single-threaded mode; patients split by a
seeded hash, rows sorted), and the manifest records every hash needed to prove where a model came
from. No wall-clock time goes into the artifacts.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from cds_service.paths import PROJECT_ROOT
from cds_service.stats import (
    binary_metrics,
    calibration_curve,
    decile_bins,
    feature_subgroup_masks,
)
from cds_service.training.config import TrainingConfig, load_training_config
from cds_service.training.model_card import render_model_card
from cds_service.training.population import check_population, scorable_mask
from fhir_mappers.bulk import TableStats
from fhir_mappers.site_binding import load_site_spec
from fhir_mappers.site_terminology import NO_SITE_TERMINOLOGY, SiteTerminology
from fhir_mappers.spec import ModelSpec
from fhir_mappers.table_job import table_rows

MANIFEST_SCHEMA = 1
CODE_FILES = ("fhir_mappers", "cds_service/training", "cds_service/stats")


@dataclass(slots=True)
class Table:
    names: list[str]
    patient_ids: list[str]
    index_times: list[str]
    x: NDArray[np.float64]
    y: NDArray[np.float64]


@dataclass(slots=True)
class TrainResult:
    directory: Path
    model_sha256: str
    manifest: dict[str, Any]


def code_sha256() -> str:
    """Hash of the mapping and training code, so a manifest names the code that made it."""
    digest = hashlib.sha256()
    for entry in CODE_FILES:
        path = PROJECT_ROOT / entry
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(str(file.relative_to(PROJECT_ROOT)).encode() + b"\0")
            digest.update(file.read_bytes())
    return digest.hexdigest()


def build_table(
    export_dir: Path, spec: ModelSpec, *, progress: bool = False, jobs: int = 1
) -> tuple[Table, TableStats]:
    """``jobs`` processes read the export's patient shards; the table is the same for any."""
    stats = TableStats()
    rows = list(table_rows(export_dir, spec, stats, progress=progress, jobs=jobs, hash_export=True))
    rows.sort(key=lambda r: (r["patient_id"], r["index_time"], r["anchor"]))
    names = spec.feature_names
    x = np.array(
        [[np.nan if r[n] is None else float(r[n]) for n in names] for r in rows], dtype=np.float64
    ).reshape(len(rows), len(names))
    y = np.array([float(r[spec.label.name]) for r in rows], dtype=np.float64)
    table = Table(names, [r["patient_id"] for r in rows], [r["index_time"] for r in rows], x, y)
    return table, stats


def table_sha256(table: Table) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps(table.names).encode())
    digest.update("\n".join(table.patient_ids).encode())
    digest.update("\n".join(table.index_times).encode())
    digest.update(np.ascontiguousarray(table.x).tobytes())
    digest.update(np.ascontiguousarray(table.y).tobytes())
    return digest.hexdigest()


def split_of(patient_id: str, cfg: TrainingConfig) -> str:
    """Seeded, order-free assignment of a patient to train / calibration / test."""
    raw = hashlib.sha256(f"{cfg.split_seed}:{patient_id}".encode()).digest()
    u = int.from_bytes(raw[:8], "big") / 2**64
    if u < cfg.test_fraction:
        return "test"
    if u < cfg.test_fraction + cfg.calibration_fraction:
        return "calibration"
    return "train"


def lightgbm_params(cfg: TrainingConfig) -> dict[str, Any]:
    params: dict[str, Any] = {
        "objective": "binary",
        "verbose": -1,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
    }
    params.update(cfg.lightgbm)
    return params


def fit_platt(margin: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    """p = sigmoid(a * margin + b); fitted on the calibration split only."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    model.fit(margin.reshape(-1, 1), y)
    return float(model.coef_[0][0]), float(model.intercept_[0])


def sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def reference_distribution(x: NDArray[np.float64], names: list[str]) -> dict[str, Any]:
    """Per-feature decile edges and bin fractions of the training split, for drift monitoring."""
    out: dict[str, Any] = {}
    for j, name in enumerate(names):
        col = x[:, j]
        present = col[~np.isnan(col)]
        entry: dict[str, Any] = {
            "n": len(col),
            "missing_rate": round(float(np.isnan(col).mean()), 6) if len(col) else None,
        }
        if len(present):
            bins = decile_bins(present)
            entry["edges"] = [float(e) for e in bins.edges]
            entry["fractions"] = [round(float(f), 6) for f in bins.fractions]
            entry["mean"] = round(float(present.mean()), 6)
            entry["std"] = round(float(present.std()), 6)
            sample_idx = np.linspace(0, len(present) - 1, min(200, len(present))).astype(int)
            entry["sample"] = [round(float(v), 4) for v in np.sort(present)[sample_idx]]
        out[name] = entry
    return out


def _subgroups(
    table: Table, mask: NDArray[np.bool_], p: NDArray[np.float64], cfg: TrainingConfig
) -> dict[str, Any]:
    y = table.y[mask]
    masks = feature_subgroup_masks(table.names, table.x[mask], cfg.age_bands)
    return {name: binary_metrics(y[sel], p[sel]) for name, sel in masks.items()}


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("lightgbm", "scikit-learn", "numpy", "scipy", "cds-risk-service"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def train_model(
    model_name: str,
    *,
    models_dir: Path,
    export_dir: Path | None = None,
    version: str | None = None,
    progress: bool = False,
    site: SiteTerminology = NO_SITE_TERMINOLOGY,
    jobs: int = 1,
) -> TrainResult:
    """``site``: the hospital's local codes, read into the table like at serving; the spec hash
    in the manifest stays the file's, the terminology hash is recorded beside it."""
    import lightgbm as lgb

    model_dir = models_dir / model_name
    spec = load_site_spec(model_dir / "features.toml", site)
    cfg = load_training_config(model_dir / "training.toml")
    export = export_dir or (PROJECT_ROOT / cfg.export)
    version = version or cfg.version
    table, stats = build_table(export, spec, progress=progress, jobs=jobs)
    check_population(stats, cfg.max_unscorable_positive_share)
    scorable = scorable_mask(spec, table.names, table.x)
    if scorable.sum() < 50 or not 0 < table.y[scorable].sum() < scorable.sum():
        raise ValueError(
            f"training table has {int(scorable.sum())} rows the service scores and "
            f"{int(table.y[scorable].sum())} positives among them: too few"
        )
    splits = np.array([split_of(pid, cfg) for pid in table.patient_ids])
    masks = {name: splits == name for name in ("train", "calibration", "test")}
    # The model learns from every row of its split; calibration and evaluation use the rows the
    # service gives a risk (all required inputs present), because those are the cards it shows.
    scored = {name: m & scorable for name, m in masks.items()}
    params = lightgbm_params(cfg)
    dataset = lgb.Dataset(
        table.x[masks["train"]],
        label=table.y[masks["train"]],
        feature_name=table.names,
        params={"verbose": -1},
    )
    booster = lgb.train(params, dataset, num_boost_round=cfg.num_boost_round)
    model_text = booster.model_to_string()
    model_bytes = model_text.encode("utf-8")
    margins = {
        k: np.asarray(booster.predict(table.x[m], raw_score=True), dtype=np.float64)
        for k, m in scored.items()
        if k != "train"
    }
    a, b = fit_platt(margins["calibration"], table.y[scored["calibration"]])
    p_test = sigmoid(a * margins["test"] + b)
    y_test = table.y[scored["test"]]
    metrics = {
        "test": binary_metrics(y_test, p_test),
        "calibration_curve": calibration_curve(y_test, p_test),
        "subgroups": _subgroups(table, scored["test"], p_test, cfg),
        "splits": {
            k: {
                "rows": int(m.sum()),
                "positives": int(table.y[m].sum()),
                "scored_rows": int(scored[k].sum()),
                "scored_positives": int(table.y[scored[k]].sum()),
                "patients": len(
                    {pid for pid, s in zip(table.patient_ids, splits, strict=True) if s == k}
                ),
            }
            for k, m in masks.items()
        },
    }
    importance = booster.feature_importance(importance_type="gain")
    out_dir = model_dir / version
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.txt").write_bytes(model_bytes)
    model_sha = hashlib.sha256(model_bytes).hexdigest()
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "model": model_name,
        "version": version,
        "title": spec.title,
        "label": {"name": spec.label.name, "description": spec.label.description},
        "artifact": {"file": "model.txt", "sha256": model_sha, "format": "lightgbm-text"},
        "features": [
            {
                "name": f.name,
                "unit": f.unit,
                "required": f.required,
                "source": f.source,
                "aggregation": f.aggregation,
            }
            for f in spec.features
        ],
        "feature_names": spec.feature_names,
        "feature_spec_sha256": spec.sha256,
        "terminology_sha256": site.sha256,
        "site_terminology_files": list(site.files),
        "calibration": {"method": "platt", "a": a, "b": b},
        "training_data": {
            "export_sha256": stats.export_sha256,
            "table_sha256": table_sha256(table),
            "resources": stats.resources,
            "patients": stats.patients,
            "rows": stats.rows,
            "positives": stats.positives,
            "unscorable_rows": stats.unscorable,
            "unscorable_positives": stats.unscorable_positives,
            "unscorable_for": dict(sorted(stats.unscorable_for.items())),
            "mapper_warnings": dict(sorted(stats.warnings.items())),
        },
        "code": {
            "package_version": library_versions()["cds-risk-service"],
            "code_sha256": code_sha256(),
        },
        "parameters": {
            "lightgbm": params,
            "num_boost_round": cfg.num_boost_round,
            "split_seed": cfg.split_seed,
            "test_fraction": cfg.test_fraction,
            "calibration_fraction": cfg.calibration_fraction,
        },
        "libraries": library_versions(),
        "metrics": metrics,
        "feature_importance_gain": {
            n: round(float(v), 4) for n, v in zip(table.names, importance, strict=True)
        },
        "reference": reference_distribution(table.x[masks["train"]], table.names),
        "gate": cfg.gate,
    }
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (out_dir / "metrics.json").write_text(
        json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (out_dir / "model_card.md").write_text(render_model_card(spec, cfg, manifest), encoding="utf-8")
    print_fn = sys.stderr.write if progress else (lambda _s: 0)
    print_fn(f"wrote {out_dir} (model sha256 {model_sha})\n")
    return TrainResult(out_dir, model_sha, manifest)
