"""The whole export: both cohorts, files renamed into place, manifest last."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import orjson
from tqdm import tqdm

from cds_devtools.synth.clock import END, local_time
from cds_devtools.synth.codes import EXAMPLE, RESOURCE_TYPES, Json
from cds_devtools.synth.ed import ed_patient
from cds_devtools.synth.ndjson import Writer
from cds_devtools.synth.post_mi import post_mi_patient

GENERATOR_VERSION: Final = "1"


def _manifest(counts: dict[str, int], seed: int, ed_patients: int, post_mi_patients: int) -> Json:
    return {
        "transactionTime": local_time(END),
        "request": f"{EXAMPLE}/fhir/$export?_type=" + ",".join(RESOURCE_TYPES),
        "requiresAccessToken": False,
        "output": [
            {"type": rt, "url": f"{rt}.ndjson", "count": counts[rt]} for rt in RESOURCE_TYPES
        ],
        "error": [],
        "extension": {
            f"{EXAMPLE}/StructureDefinition/synthetic-cohort": {
                "synthetic": True,
                "generator": f"cds_devtools.synth v{GENERATOR_VERSION}",
                "seed": seed,
                "ed_patients": ed_patients,
                "post_mi_patients": post_mi_patients,
            }
        },
    }


def generate_cohort(
    out_dir: Path,
    *,
    ed_patients: int = 4000,
    post_mi_patients: int = 800,
    seed: int = 20261123,
    progress: bool = False,
) -> dict[str, int]:
    """Write a synthetic bulk export into ``out_dir`` and return resource counts per type.

    Each patient draws from its own seeded stream, so the ED cohort does not change when the
    post-MI cohort is resized (only the running resource ids shift). Files are written under a
    temporary name and renamed at the end, and ``manifest.json`` comes last: a reader that finds a
    manifest finds a complete export.
    """
    if ed_patients < 0 or post_mi_patients < 0:
        raise ValueError("patient counts must not be negative")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # A manifest left from an earlier run would vouch for files that are about to be replaced.
    (out_dir / "manifest.json").unlink(missing_ok=True)
    synth = Writer(out_dir, seed)
    bar = tqdm(
        total=ed_patients + post_mi_patients,
        unit="patient",
        desc="synthetic cohort",
        disable=not progress,
    )
    try:
        for i in range(1, ed_patients + 1):
            ed_patient(synth, i)
            bar.update(1)
        for i in range(1, post_mi_patients + 1):
            post_mi_patient(synth, i)
            bar.update(1)
    except BaseException:
        synth.close()
        for partial in synth.partial.values():
            partial.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
        synth.close()
    for rt, partial in synth.partial.items():
        partial.replace(out_dir / f"{rt}.ndjson")
    manifest = _manifest(synth.counts, seed, ed_patients, post_mi_patients)
    (out_dir / "manifest.json").write_bytes(
        orjson.dumps(manifest, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
    )
    return dict(synth.counts)
