"""Prefetch Bundles the way EHRs send them, for the simulation's calls.

Most EHRs send searchset Bundles whose resources point at ``Patient/x``. Some pass on what they
hold as a transaction or document would carry it: entries named ``urn:uuid:...`` in ``fullUrl``,
references to those names, and the Patient's own entry in the Bundle so that they resolve
(https://hl7.org/fhir/R4/bundle.html#references). The share is stable per patient (drawn from its
id), so the same export always gives the same calls.
"""

from __future__ import annotations

import uuid
import zlib
from typing import Any

URN_UUID_PERCENT = 20
_NAMESPACE = uuid.UUID("5b7f6c1e-2f0a-4c55-9a44-2a6a3e0c9d11")


def _urn(rtype: str, rid: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, f'{rtype}/{rid}')}"


def uses_urn_uuid(patient_id: str) -> bool:
    return zlib.crc32(b"urn:" + patient_id.encode()) % 100 < URN_UUID_PERCENT


def _renamed(res: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    out = dict(res)
    for key in ("subject", "patient", "encounter"):
        ref = out.get(key)
        if not isinstance(ref, dict):
            continue
        target = ref.get("reference")
        if isinstance(target, str) and target in names:
            out[key] = {**ref, "reference": names[target]}
    return out


def prefetch_bundles(resources: list[dict[str, Any]], keys: dict[str, str]) -> dict[str, Any]:
    """``{"patient": Patient, key: Bundle of that type, ...}`` for ``keys`` (key -> type)."""
    patient = next(r for r in resources if r.get("resourceType") == "Patient")
    if not uses_urn_uuid(str(patient["id"])):
        out: dict[str, Any] = {"patient": patient}
        for key, rtype in keys.items():
            entries = [{"resource": r} for r in resources if r.get("resourceType") == rtype]
            out[key] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
        return out
    names = {
        f"{r['resourceType']}/{r['id']}": _urn(str(r["resourceType"]), str(r["id"]))
        for r in resources
        if isinstance(r.get("id"), str)
    }
    patient_entry: dict[str, Any] = {
        "fullUrl": names[f"Patient/{patient['id']}"],
        "resource": patient,
    }
    out = {"patient": patient}
    for key, rtype in keys.items():
        named: list[dict[str, Any]] = [
            {"fullUrl": names[f"{rtype}/{r['id']}"], "resource": _renamed(r, names)}
            for r in resources
            if r.get("resourceType") == rtype
        ]
        out[key] = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [*named, patient_entry],
        }
    return out
