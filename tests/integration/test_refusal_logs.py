"""Every refusal leaves a log line with its reason and no patient data: one test per status
(400, 401, 403, 412, 413 on the CDS Hooks routes; 403 and 502 in the SMART app, with the OAuth
error code the EHR sent), against a real server with JWT verification on.

Each call names a synthetic patient (id and family name) so that the tests can check the log line
does not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwk

from cds_service.cds_hooks.examples import FAMILY, ed_case, ed_prefetch, hook_body
from cds_service.main import create_app
from cds_service.security.local_issuer import generate_key, public_jwks, sign
from tests.utils.server import ServerThread, free_port
from tests.utils.service import FHIR_BASE, NOW, make_settings, new_database
from tests.web.smart_servers import SmartEhr

ISS = "urn:test:refusal-ehr"
SERVICE = "ed-admission-risk"
PID = "syn-refusal-7731"
PATH = f"/cds-services/{SERVICE}"


@dataclass
class Running:
    client: httpx.Client
    key: jwk.Key
    url: str

    def token(self, path: str = PATH, **kw: Any) -> str:
        aud = kw.pop("aud", self.url + path)
        now = kw.pop("now", NOW.timestamp())
        return sign(self.key, iss=ISS, aud=aud, now=now, **kw)

    def call(self, body: Any = None, *, content: bytes | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token(**kw)}"}
        if content is not None:
            headers["Content-Type"] = "application/json"
            return self.client.post(PATH, content=content, headers=headers)
        return self.client.post(PATH, json=body, headers=headers)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("refusals")
    key = generate_key("ES384")
    callers = [{"iss": ISS, "jwks": public_jwks(key), "fhir_servers": [FHIR_BASE]}]
    (tmp / "callers.json").write_text(json.dumps(callers))
    db = new_database("sqlite", tmp)
    port = free_port()
    settings = make_settings(
        db.url,
        tmp,
        public_base_url=f"http://127.0.0.1:{port}",  # the SMART launch redirects back here
        auth_disabled=False,
        trusted_issuers=tmp / "callers.json",
        max_body_bytes=100_000,
    )
    app = create_app(settings, clock=lambda: NOW)
    try:
        with ServerThread(app, port) as server, httpx.Client(base_url=server.url, timeout=10) as c:
            yield Running(c, key, server.url)
    finally:
        db.close()


def _body(**kw: Any) -> dict[str, Any]:
    case = ed_case(NOW, pid=PID)
    prefetch = kw.pop("prefetch", ed_prefetch(case))
    return hook_body("encounter-start", PID, prefetch, encounter_id=case["encounter_id"], **kw)


def refusal_line(caplog: pytest.LogCaptureFixture, status: int) -> str:
    """The one refusal line for this status, checked for patient data."""
    lines = [
        r.getMessage() for r in caplog.records if r.getMessage().startswith(f"refused {status} ")
    ]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    line = lines[0]
    for secret in (PID, FAMILY, "synthetic-access-token", "Bearer ey"):
        assert secret not in line
    return line


@pytest.fixture()
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def test_400_logs_what_is_wrong_with_the_request(service: Running, logs: Any) -> None:
    body = _body()
    del body["context"]["userId"]
    r = service.call(body)
    assert r.status_code == 400, r.text
    line = refusal_line(logs, 400)
    assert "POST /cds-services/{service_id}" in line
    assert "userId" in line


def test_401_logs_the_reason_and_the_oauth_error_code(service: Running, logs: Any) -> None:
    r = service.call(_body(), lifetime=5, now=NOW.timestamp() - 3600)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    line = refusal_line(logs, 401)
    assert "token expired (invalid_token)" in line


def test_401_on_an_audience_mismatch_names_the_expected_audience(
    service: Running, logs: Any
) -> None:
    wrong = "http://localhost:8000" + PATH
    r = service.call(_body(), aud=wrong)
    assert r.status_code == 401
    assert r.json()["issue"][0]["diagnostics"] == "token audience is not this endpoint"
    line = refusal_line(logs, 401)
    assert f"expected audience {service.url}{PATH}" in line
    assert wrong in line


def test_an_audience_with_a_trailing_slash_is_the_same_endpoint(service: Running) -> None:
    r = service.call(_body(), aud=f"{service.url}{PATH}/")
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("suffix", [f"{PATH}//", f"{PATH}x/", f"{PATH}/feedback", "/", ""])
def test_the_trailing_slash_weakens_nothing(service: Running, suffix: str) -> None:
    assert service.call(_body(), aud=service.url + suffix).status_code == 401


def test_403_logs_the_untrusted_fhir_server(service: Running, logs: Any) -> None:
    r = service.call(_body(fhir_server="https://fhir.elsewhere.example/r4"))
    assert r.status_code == 403
    line = refusal_line(logs, 403)
    assert "fhirServer is not a trusted FHIR server" in line


def test_412_logs_the_missing_data(service: Running, logs: Any) -> None:
    r = service.call(_body(prefetch=None))
    assert r.status_code == 412, r.text
    assert "412" in refusal_line(logs, 412)


def test_413_logs_the_size_limit(service: Running, logs: Any) -> None:
    body = _body()
    body["context"]["padding"] = FAMILY * 20_000
    r = service.call(content=json.dumps(body).encode())
    assert r.status_code == 413
    assert "request body larger than 100000 bytes" in refusal_line(logs, 413)


# --- the SMART app ----------------------------------------------------------------------------


def smart_line(caplog: pytest.LogCaptureFixture, status: int) -> str:
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith(f"smart app refused {status}")
    ]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    assert PID not in lines[0]
    return lines[0]


def test_smart_502_logs_an_unreachable_ehr(service: Running, logs: Any) -> None:
    iss = f"http://127.0.0.1:{free_port()}/fhir"
    r = service.client.get("/smart/launch", params={"iss": iss, "launch": "launch-1"})
    assert r.status_code == 502
    line = smart_line(logs, 502)
    assert "SMART configuration could not be read (ConnectError)" in line


@pytest.fixture()
def ehr() -> Iterator[SmartEhr]:
    with SmartEhr() as server:
        yield server


def _launch(service: Running, ehr: SmartEhr, launch: str) -> httpx.Response:
    with httpx.Client(base_url=service.url, follow_redirects=True, timeout=10) as browser:
        return browser.get("/smart/launch", params={"iss": ehr.fhir_base, "launch": launch})


def test_smart_502_logs_the_oauth_error_code_of_the_token_endpoint(
    service: Running, ehr: SmartEhr, logs: Any
) -> None:
    # Registered as a confidential client at the EHR, the app sends no secret: invalid_client.
    ehr.register("cds-risk-smart-app", f"{service.url}/smart/callback", secret="s3cret")
    r = _launch(service, ehr, ehr.add_launch(PID))
    assert r.status_code == 502, r.text
    line = smart_line(logs, 502)
    assert "(invalid_client)" in line


def test_smart_403_logs_the_oauth_error_the_ehr_sent(
    service: Running, ehr: SmartEhr, logs: Any
) -> None:
    ehr.register("cds-risk-smart-app", f"{service.url}/smart/callback")
    r = _launch(service, ehr, "no-such-launch")
    assert r.status_code == 403, r.text
    assert "(invalid_request)" in smart_line(logs, 403)


def test_no_such_route_and_method_are_logged_without_the_path(service: Running, logs: Any) -> None:
    assert service.client.get(f"/Patient/{PID}").status_code == 404
    assert refusal_line(logs, 404) == "refused 404 GET (no matching route): Not Found"
    assert service.client.put(PATH).status_code == 405
    assert "refused 405 PUT" in refusal_line(logs, 405)
