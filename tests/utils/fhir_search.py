"""A small FHIR R4 read/search server on loopback, loaded with third-party data.

What a hospital's server does with the data matters for what the service sees, so it follows the
specification where the tests depend on it:
- a transaction Bundle is stored the way a server processes one: each entry gets its id, and every
  ``urn:uuid:`` reference to another entry's ``fullUrl`` becomes ``Type/id``
  (https://hl7.org/fhir/R4/bundle.html#references);
- ``GET [type]?patient=|subject=`` with ``code`` (token: ``system|code`` or ``code``, matching
  ``Observation.code``/``Condition.code`` codings only, as FHIR's ``code`` parameter does),
  ``date`` (``ge``/``gt``/``le``/``lt`` prefixes), ``_count`` and ``next`` paging; ``_sort`` is
  answered newest first; searchset entries carry absolute ``fullUrl`` s;
- ``GET Patient/{id}``; anything else is a 404 with an OperationOutcome.

Every response status is recorded (never the query: it names the patient).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.utils.server import ServerThread

FHIR_JSON = "application/fhir+json"


def _rewrite(node: Any, ids: dict[str, str]) -> Any:
    """Every ``reference`` that names a Bundle entry's fullUrl becomes ``Type/id``."""
    if isinstance(node, dict):
        out = {k: _rewrite(v, ids) for k, v in node.items()}
        ref = out.get("reference")
        if isinstance(ref, str) and ref in ids:
            out["reference"] = ids[ref]
        return out
    if isinstance(node, list):
        return [_rewrite(v, ids) for v in node]
    return node


def _when(res: dict[str, Any]) -> datetime | None:
    raw: Any = None
    for key in ("effectiveDateTime", "effectiveInstant", "onsetDateTime", "recordedDate"):
        raw = raw or res.get(key)
    for key in ("effectivePeriod", "period", "onsetPeriod"):
        period = res.get(key)
        if raw is None and isinstance(period, dict):
            raw = period.get("start") or period.get("end")
    raw = raw or res.get("issued")
    if not isinstance(raw, str):
        return None
    moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return moment if moment.tzinfo else None


def date_matches(moment: datetime | None, spec: str) -> bool:
    """FHIR date search with a ``ge``/``gt``/``le``/``lt``/``eq`` prefix (``eq`` when none)."""
    if moment is None:
        return False
    prefix, raw = (
        (spec[:2], spec[2:]) if spec[:2] in ("ge", "gt", "le", "lt", "eq") else ("eq", spec)
    )
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return {
        "ge": moment >= value,
        "gt": moment > value,
        "le": moment <= value,
        "lt": moment < value,
        "eq": moment == value,
    }[prefix]


def _code_ok(res: dict[str, Any], tokens: list[str]) -> bool:
    code = res.get("code")
    codings = code.get("coding", []) if isinstance(code, dict) else []
    have = set()
    for coding in codings:
        if isinstance(coding, dict):
            have.add(f"{coding.get('system', '')}|{coding.get('code', '')}")
            have.add(str(coding.get("code", "")))
    return any(t in have for t in tokens)


def _patient_of(res: dict[str, Any]) -> str | None:
    if res.get("resourceType") == "Patient":
        return str(res.get("id"))
    for key in ("subject", "patient"):
        ref = res.get(key)
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str) and target.startswith("Patient/"):
            return target.removeprefix("Patient/")
    return None


def _outcome(status: int, text: str) -> JSONResponse:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": text}],
    }
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON)


class FhirSearchServer:
    def __init__(self) -> None:
        self.by_type: dict[str, dict[str, dict[str, Any]]] = {}
        self.statuses: list[int] = []
        self.base = ""
        self.app = Starlette(
            routes=[
                Route("/fhir/Patient/{pid}", self._read_patient),
                Route("/fhir/{rtype}", self._search),
            ]
        )

    # --- loading ---------------------------------------------------------------------------

    def load(self, resources: list[dict[str, Any]]) -> None:
        for res in resources:
            self.by_type.setdefault(str(res["resourceType"]), {})[str(res["id"])] = res

    def load_transaction(self, bundle: dict[str, Any]) -> None:
        """Store a transaction Bundle's entries with their urn:uuid references resolved."""
        entries = [e for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
        ids = {
            e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in entries
            if isinstance(e.get("fullUrl"), str)
        }
        self.load([_rewrite(copy.deepcopy(e["resource"]), ids) for e in entries])

    # --- routes ----------------------------------------------------------------------------

    async def _read_patient(self, request: Request) -> JSONResponse:
        res = self.by_type.get("Patient", {}).get(request.path_params["pid"])
        if res is None:
            self.statuses.append(404)
            return _outcome(404, "no such Patient")
        self.statuses.append(200)
        return JSONResponse(res, media_type=FHIR_JSON)

    async def _search(self, request: Request) -> JSONResponse:
        rtype = request.path_params["rtype"]
        query = request.query_params
        patient = query.get("patient") or query.get("subject")
        if rtype not in ("Observation", "Encounter", "Condition") or not patient:
            self.statuses.append(404)
            return _outcome(404, "search not supported here")
        patient = patient.removeprefix("Patient/")
        hits = [r for r in self.by_type.get(rtype, {}).values() if _patient_of(r) == patient]
        tokens = [t for t in query.get("code", "").split(",") if t]
        if tokens:
            hits = [r for r in hits if _code_ok(r, tokens)]
        for spec in query.getlist("date"):
            hits = [r for r in hits if date_matches(_when(r), spec)]
        hits.sort(key=lambda r: (str(_when(r) or ""), str(r.get("id"))), reverse=True)
        count = max(1, min(int(query.get("_count", "100")), 1000))
        offset = int(query.get("_offset", "0"))
        page = hits[offset : offset + count]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(hits),
            "entry": [
                {
                    "fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in page
            ],
        }
        if offset + count < len(hits):
            params = [(k, v) for k, v in query.multi_items() if k != "_offset"]
            params.append(("_offset", str(offset + count)))
            next_url = f"{self.base}/{rtype}?{urlencode(params)}"
            bundle["link"] = [{"relation": "next", "url": next_url}]
        self.statuses.append(200)
        return JSONResponse(bundle, media_type=FHIR_JSON)


@contextmanager
def fhir_search_server(server: FhirSearchServer) -> Iterator[str]:
    """Serve ``server`` on loopback; yields its FHIR base URL."""
    with ServerThread(server.app) as thread:
        server.base = f"{thread.url}/fhir"
        yield server.base
