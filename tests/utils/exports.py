"""A tiny ED export written by hand, with the disorder of a real FHIR Bulk Data export.

Shared by the bulk-reader, population and profiler tests: resources of one patient spread over
files and shuffled, a garbage line, an orphan Observation, an unknown resource type.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any


def ndjson(path: Path, lines: list[Any]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line if isinstance(line, str) else json.dumps(line))
            handle.write("\n")


def ed_resources(fhir) -> dict[str, list[dict[str, Any]]]:
    enc = fhir.encounter
    obs = fhir.observation
    return {
        "Patient": [
            fhir.patient("p1", "1950-02-01", "male"),  # turns 74 on the day of the first visit
            fhir.patient("p2", "1990-07-15", "female"),
            fhir.patient("p3", "1985-01-01", "female"),
        ],
        "Encounter": [
            # p1: ED visit, admitted 6 h later -> label 1
            enc("e1", "EMER", "2024-02-01T10:00:00Z", priority="EM", patient="p1"),
            enc("a1", "IMP", "2024-02-01T16:00:00Z", end="2024-02-05T10:00:00Z", patient="p1"),
            # p1: second ED visit, the admission was cancelled -> label 0
            enc("e4", "EMER", "2024-03-10T09:00:00+01:00", priority="UR", patient="p1"),
            enc("a4", "IMP", "2024-03-10T12:00:00Z", status="cancelled", patient="p1"),
            # p2: ED visit, admitted 49 h later (outside 24 h) -> label 0
            enc("e2", "EMER", "2024-02-03T08:00:00Z", priority="R", patient="p2"),
            enc("a2", "IMP", "2024-02-05T09:00:00Z", patient="p2"),
            # p2: a planned ED encounter is not a prediction moment
            enc("e5", "EMER", "2024-04-01T08:00:00Z", status="planned", patient="p2"),
            # p3: ED visit without heart rate or blood pressure -> dropped (missing required)
            enc("e3", "EMER", "2024-02-04T12:00:00Z", patient="p3"),
            enc("a3", "ACUTE", "2024-02-04T15:00:00Z", patient="p3"),
        ],
        "Observation": [
            obs("hr1", "8867-4", 118, "/min", at="2024-02-01T10:20:00Z", patient="p1"),
            fhir.bp_panel("bp1", 92, 55, at="2024-02-01T10:25:00Z", patient="p1"),
            obs("t1", "8310-5", 102.2, "[degF]", at="2024-02-01T10:21:00Z", patient="p1"),
            obs("hr4", "8867-4", 84, "/min", at="2024-03-10T09:15:00+01:00", patient="p1"),
            fhir.bp_panel("bp4", 135, 85, at="2024-03-10T08:20:00Z", patient="p1"),
            obs("hr2", "8867-4", 72, "/min", at="2024-02-03T08:10:00Z", patient="p2"),
            obs("hr2b", "8867-4", 76, "/min", at="2024-02-03T08:40:00Z", patient="p2"),
            fhir.bp_panel("bp2", 121, 79, at="2024-02-03T08:12:00Z", patient="p2"),
            obs(
                "hr2x",
                "8867-4",
                190,
                "/min",
                at="2024-02-03T08:50:00Z",
                patient="p2",
                status="entered-in-error",
            ),
            obs("t3", "8310-5", 37.1, "Cel", at="2024-02-04T12:05:00Z", patient="p3"),
        ],
    }


def write_ed_export(root: Path, fhir, seed: int = 7) -> Path:
    res = ed_resources(fhir)
    rng = random.Random(seed)
    observations = list(res["Observation"])
    rng.shuffle(observations)
    encounters = list(res["Encounter"])
    rng.shuffle(encounters)
    root.mkdir(parents=True, exist_ok=True)
    ndjson(root / "Patient.ndjson", [*res["Patient"][::-1], "{not json", ""])
    ndjson(root / "Encounter.ndjson", encounters)
    half = len(observations) // 2
    orphan = fhir.observation("orphan", "8867-4", 60, "/min")
    del orphan["subject"]
    ndjson(root / "Observation.000.ndjson", observations[:half])
    ndjson(root / "Observation.001.ndjson", [*observations[half:], orphan, [1, 2]])
    ndjson(root / "Condition.ndjson", [])
    (root / "Medication.ndjson").write_text('{"resourceType": "Medication"}\n', encoding="utf-8")
    (root / "manifest.json").write_text("{}", encoding="utf-8")
    return root
