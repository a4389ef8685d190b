"""The Kubernetes manifests under deploy/kubernetes, read as data for the deploy tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO_ROOT

KUBERNETES = REPO_ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = sorted(p for p in (KUBERNETES / "overlays").iterdir() if p.is_dir())

Doc = dict[str, Any]


def load(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def kustomization(directory: Path) -> Doc:
    (doc,) = load(directory / "kustomization.yaml")
    return doc


def base_docs() -> list[Doc]:
    """The base's resources, in the order its kustomization lists them."""
    return [d for name in kustomization(BASE)["resources"] for d in load(BASE / name)]


def find(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(doc: Doc) -> Doc | None:
    kind = doc["kind"]
    if kind in ("Deployment", "Job"):
        return doc["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return None


def workloads(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for doc in docs:
        spec = pod_spec(doc)
        if spec is not None:
            yield doc, spec


def containers(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    for doc, spec in workloads(docs):
        for c in spec.get("initContainers", []) + spec["containers"]:
            yield doc, c


def kubectl() -> str | None:
    return shutil.which("kubectl")


def render(overlay: Path) -> list[Doc]:
    """`kubectl kustomize` (kustomize built into kubectl): what `kubectl apply -k` would send."""
    exe = kubectl()
    assert exe is not None
    done = subprocess.run(
        [exe, "kustomize", str(overlay)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d is not None]
