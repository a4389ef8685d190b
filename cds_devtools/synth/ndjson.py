"""The export's NDJSON files and running resource ids; one writer writes one export.

JSON is written with sorted keys and ids are counters, so the same seed gives the same bytes.
Files carry a ``.partial`` suffix until the cohort renames them into place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO, Final

import orjson

from cds_devtools.synth.codes import RESOURCE_TYPES

_DUMP_OPTS: Final = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE


class Writer:
    """Owns the output files and id counters."""

    def __init__(self, out_dir: Path, seed: int) -> None:
        self.seed = seed
        self.counts = dict.fromkeys(RESOURCE_TYPES, 0)
        self.partial = {rt: out_dir / f"{rt}.ndjson.partial" for rt in RESOURCE_TYPES}
        self._fh: dict[str, BinaryIO] = {
            rt: path.open("wb", buffering=1 << 20) for rt, path in self.partial.items()
        }
        self._obs_fh = self._fh["Observation"]
        self._n_enc = 0
        self._n_cond = 0

    def close(self) -> None:
        for fh in self._fh.values():
            fh.close()

    def write(self, rtype: str, resource: dict[str, Any]) -> None:
        self._fh[rtype].write(orjson.dumps(resource, option=_DUMP_OPTS))
        self.counts[rtype] += 1

    def next_encounter_id(self) -> str:
        self._n_enc += 1
        return f"enc-{self._n_enc:07d}"

    def next_condition_id(self) -> str:
        self._n_cond += 1
        return f"cond-{self._n_cond:06d}"

    def next_observation_id(self) -> str:
        """Counted when the id is taken: an observation is always written once it has one."""
        self.counts["Observation"] += 1
        return f"obs-{self.counts['Observation']:08d}"

    def observation(self, resource: dict[str, Any]) -> None:
        self._obs_fh.write(orjson.dumps(resource, option=_DUMP_OPTS))
