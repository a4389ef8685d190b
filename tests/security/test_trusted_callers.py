"""The trusted-callers file: what it accepts, and start-up messages that name the bad entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cds_service.security.trusted_callers import (
    TrustedCallersError,
    load_trusted_callers,
    parse_trusted_callers,
)

JWKS = {"keys": [{"kty": "EC", "crv": "P-384", "x": "x", "y": "y", "kid": "k1"}]}


def entry(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"iss": "https://ehr.example", "jwks": JWKS}
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def test_fhir_servers_are_normalized_for_comparison() -> None:
    issuers = parse_trusted_callers([entry(fhir_servers=["HTTPS://FHIR.Example/r4/"])])
    issuer = issuers["https://ehr.example"]
    assert issuer.fhir_servers == ("https://fhir.example/r4",)
    assert issuer.allows_fhir_server("https://fhir.example/r4")
    assert not issuer.allows_fhir_server("https://fhir.example/r5")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({}, "x: must be a JSON list of issuer objects"),
        (["nope"], "x[0]: must be an object"),
        ([entry(colour="red")], "x[0]: unknown keys ['colour']"),
        ([entry(iss="")], "x[0]: 'iss' is required"),
        ([entry(jwks=None)], "x[0] (https://ehr.example): give exactly one of"),
        ([entry(jwks_url="https://k.example")], "x[0] (https://ehr.example): give exactly one"),
        ([entry(jwks=None, jwks_url="ftp://k")], "'jwks_url' must be an http(s) URL"),
        ([entry(jwks={"keys": [{"kty": "EC", "d": "secret"}]})], "holds a private key"),
        ([entry(jwks={"k": 1})], "'jwks' must be a JWK Set with 'keys'"),
        ([entry(fhir_servers="https://f")], "'fhir_servers' must be a list of URLs"),
        ([entry(tenant=7)], "'tenant' must be a string"),
        ([entry(), entry()], "x[1]: issuer https://ehr.example is listed twice"),
    ],
)
def test_bad_entries_are_named(doc: Any, message: str) -> None:
    with pytest.raises(TrustedCallersError) as info:
        parse_trusted_callers(doc, "x")
    assert message in str(info.value)


def test_unreadable_files_say_why(tmp_path: Path) -> None:
    with pytest.raises(TrustedCallersError, match="cannot read"):
        load_trusted_callers(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[\n{", encoding="utf-8")
    with pytest.raises(TrustedCallersError, match=r"not valid JSON \(line 2\)"):
        load_trusted_callers(bad)
