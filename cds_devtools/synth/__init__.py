"""Seeded synthetic FHIR R4 Bulk Data export for the two bundled models.

The project ships no patient data, yet every model must be trainable, testable and benchmarkable
from a FHIR export exactly as a hospital would hand one over. This package fabricates such an
export: a known data-generating process (so a trained model's quality can be judged against what
is learnable) rendered with the encoding untidiness of real EHR exports (so the FHIR mapper is
exercised on what it will meet: mixed units, several codings, amended and erroneous results, odd
timestamps). None of it is clinical truth; ``docs/synthetic-data.md`` describes the process.

Reproducibility is a hard requirement (training manifests hash their input data), so every random
draw comes from a ``random.Random`` seeded per patient, times are offsets from a fixed date rather
than the wall clock, ids are counters, and JSON is written with sorted keys. Output is streamed:
memory stays flat however many observations are asked for.

Modules: ``clock`` (time and its Dutch civil formatting), ``draws`` (seeded random draws),
``codes`` and ``kinds`` (terminology and measured concepts), ``ndjson`` (files and ids),
``resources`` (Patient, Encounter, Condition), ``observations``, ``ed`` (the ED cohort),
``post_mi`` (home monitoring after an infarction) and ``cohort`` (the whole export). The modules
are internal: only the names below are the package's API.
"""

from __future__ import annotations

from cds_devtools.synth.clock import BASE_TIME
from cds_devtools.synth.codes import RESOURCE_TYPES
from cds_devtools.synth.cohort import generate_cohort

__all__ = ["BASE_TIME", "RESOURCE_TYPES", "generate_cohort"]
