"""The SMART app launched from the EHR's app menu (no card, no ``appContext``), the feedback
rules on its page, and the session table holding no identifier in clear.

Same stand-ins as ``test_smart_app.py``: the real service, a real SMART authorization server and
FHIR server on loopback, real SQLite/PostgreSQL, and headless Chromium for the screenshot.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from cds_service.cds_hooks.examples import post_mi_case
from cds_service.security.pseudonym import pseudonym
from tests.utils.screenshots import screenshot_dir
from tests.web import test_smart_app as base
from tests.web.test_smart_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ED,
    MI,
    Smart,
    csrf_of,
    handle_of,
    run_launch,
)

smart = base.smart  # the stand-ins' fixtures, one service per backend for this module too
s = base.s

RISK = re.compile(r"data-risk='([0-9.]+)'")


def menu_launch(s: Smart, pid: str, service: str | None = MI, **extra: object) -> str:
    """The launch URL an EHR's app menu opens: no appContext; the service in the registered
    launch URL."""
    url = s.launch(pid, None, **extra)
    return f"{url}&service={service}" if service else url


def load_mi(s: Smart, pid: str, *, with_infarction: bool = True) -> None:
    case = post_mi_case(s.clock.now, pid)
    s.ehr.load(case["patient"], *case["observations"])
    if with_infarction:
        s.ehr.load(*case["conditions"])


def audit_rows(s: Smart, pid: str) -> list[dict[str, object]]:
    key = s.settings.effective_pseudonym_key
    return s.db.rows(
        "SELECT * FROM v_cards WHERE patient_pseudonym = :p ORDER BY requested_at",
        p=pseudonym(key, "Patient", pid),
    )


def test_menu_launch_shows_the_risk_audited_like_a_card(s: Smart) -> None:
    pid = "syn-mi-menu"
    load_mi(s, pid)
    done = run_launch(s.browser(), menu_launch(s, pid))
    assert [r.status_code for r in done.responses] == [302, 302, 303, 200]
    page = done.final.text
    shown = RISK.search(page)
    assert shown is not None, page
    assert "id='menu-launch'" in page and "On the card you opened this from" not in page
    assert "Post-MI unplanned visit risk" in page and "name='outcome' value='accepted'" in page
    rows = audit_rows(s, pid)
    assert len(rows) == 1
    row = rows[0]
    assert row["hook"] == "smart-launch" and row["service_id"] == MI
    assert row["role"] == "live" and row["card_kind"] == "risk" and row["shown"]
    assert row["risk"] == pytest.approx(float(shown.group(1)), abs=5e-5)
    assert row["model_name"] == "post-mi-unplanned-visit" and row["risk_band"]
    # the same mapper and deployed model as the CDS Hooks call on the same data
    card_uuid, _ = s.card(pid)
    hook_row = s.db.rows("SELECT risk FROM v_cards WHERE card_uuid = :u", u=card_uuid)[0]
    assert hook_row["risk"] == pytest.approx(row["risk"], abs=1e-9)
    # a reload with the same risk writes no second row; the response refers to the row
    again = done.client.get(done.locations[-1])
    assert again.status_code == 200 and len(audit_rows(s, pid)) == 2  # + the hook card
    answered = done.client.post(
        f"{s.url}/smart/feedback",
        data={"s": handle_of(done.locations[-1]), "csrf": csrf_of(page), "outcome": "accepted"},
    )
    assert answered.status_code == 303
    feedback = s.db.rows("SELECT * FROM v_feedback WHERE card_uuid = :u", u=row["card_uuid"])
    assert len(feedback) == 1
    assert feedback[0]["outcome"] == "accepted" and feedback[0]["channel"] == "smart"
    assert feedback[0]["model_version"] == row["model_version"]


def test_new_data_after_the_first_view_is_a_new_row(s: Smart) -> None:
    pid = "syn-mi-menu-new"
    load_mi(s, pid, with_infarction=False)
    done = run_launch(s.browser(), menu_launch(s, pid))
    assert done.final.status_code == 200 and RISK.search(done.final.text) is None
    load_mi(s, pid)  # the infarction is recorded: now there is a risk
    again = done.client.get(done.locations[-1])
    assert RISK.search(again.text) is not None
    kinds = [r["card_kind"] for r in audit_rows(s, pid)]
    assert kinds == ["no-risk", "risk"]


def test_no_accept_where_no_risk_was_shown(s: Smart) -> None:
    pid = "syn-mi-menu-norisk"
    load_mi(s, pid, with_infarction=False)
    done = run_launch(s.browser(), menu_launch(s, pid))
    page = done.final.text
    assert "No risk can be computed now" in page
    assert "value='accepted'" not in page and "id='no-accept'" in page
    handle = handle_of(done.locations[-1])
    url = f"{s.url}/smart/feedback"
    refused = done.client.post(
        url, data={"s": handle, "csrf": csrf_of(page), "outcome": "accepted"}
    )
    assert refused.status_code == 409 and "nothing to accept" in refused.text
    (row,) = audit_rows(s, pid)
    assert row["card_kind"] == "no-risk" and row["risk"] is None
    assert s.db.rows("SELECT 1 FROM card_feedback WHERE card_uuid = :u", u=row["card_uuid"]) == []
    dismissed = done.client.post(
        url,
        data={"s": handle, "csrf": csrf_of(page), "outcome": "overridden", "reason": "data-wrong"},
    )
    assert dismissed.status_code == 303
    stored = s.db.rows("SELECT outcome FROM card_feedback WHERE card_uuid = :u", u=row["card_uuid"])
    assert [r["outcome"] for r in stored] == ["overridden"]


def test_menu_launch_needs_a_known_service(s: Smart) -> None:
    unknown = run_launch(s.browser(), menu_launch(s, "syn-mi-menu-x", "no-such-service"))
    assert unknown.final.status_code == 400 and "Unknown service" in unknown.final.text
    assert MI in unknown.final.text
    anchored = run_launch(s.browser(), menu_launch(s, "syn-mi-menu-x", "ed-admission-risk"))
    assert anchored.final.status_code == 400 and "patient-view" in anchored.final.text
    unnamed = run_launch(s.browser(), menu_launch(s, "syn-mi-menu-x", None))
    assert unnamed.final.status_code == 400 and "?service=" in unnamed.final.text


def test_card_context_wins_over_the_launch_url_service(s: Smart) -> None:
    _, app_context = s.card("syn-mi-menu-card")
    url = s.launch("syn-mi-menu-card", app_context) + f"&service={ED}"
    done = run_launch(s.browser(), url)
    assert done.final.status_code == 200
    assert "On the card you opened this from" in done.final.text
    assert "id='menu-launch'" not in done.final.text
    assert [r["hook"] for r in audit_rows(s, "syn-mi-menu-card")] == ["patient-view"]


def test_menu_launch_in_browser(s: Smart, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    pid = "syn-mi-menu-browser"
    load_mi(s, pid)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(menu_launch(s, pid))
            page.wait_for_url(re.compile(re.escape(f"{s.url}/smart/app?s=") + r"[\w-]{16}$"))
            assert "%" in page.locator("#risk-now .big").inner_text()
            assert "app menu" in page.locator("#menu-launch").inner_text()
            assert page.locator("svg.trend").count() >= 4
            page.screenshot(
                path=str(screenshot_dir(tmp_path) / "smart-app-menu-launch.png"), full_page=True
            )
            page.fill("#c-accept", "Plausible.")
            page.click("button.accept")
            page.wait_for_selector("#feedback-done")
        finally:
            browser.close()
    (row,) = audit_rows(s, pid)
    (answer,) = s.db.rows("SELECT * FROM v_feedback WHERE card_uuid = :u", u=row["card_uuid"])
    assert answer["outcome"] == "accepted" and answer["user_comment"] == "Plausible."


# --- no identifier in clear in SQL -------------------------------------------------------------

CANARY_PATIENT = "syn-canary-q7x4"
CANARY_ENCOUNTER = "syn-canary-enc-k2v9"


def _database_text(s: Smart) -> str:
    """Every row of every table and view, as text; for SQLite also the raw file bytes (freed
    pages and the journal included), where a deleted or overwritten value could linger."""
    parts = []
    with s.db.engine.connect() as conn:
        inspector = sa.inspect(conn)
        for name in inspector.get_table_names() + inspector.get_view_names():
            table = sa.table(name)
            rows = conn.execute(sa.select(sa.text("*")).select_from(table)).all()
            parts.extend(repr(tuple(r)) for r in rows)
        assert "web_sessions" in inspector.get_table_names()
    if s.db.url.startswith("sqlite:///"):
        path = Path(s.db.url.removeprefix("sqlite:///"))
        for file in (
            path,
            path.with_name(path.name + "-wal"),
            path.with_name(path.name + "-journal"),
        ):
            if file.exists():
                parts.append(file.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def test_no_patient_or_encounter_id_in_clear_in_the_database(s: Smart) -> None:
    """A card launch and a menu launch for the canary patient, with an encounter in context,
    feedback on both; then the whole database is searched for the canary ids."""
    load_mi(s, CANARY_PATIENT)
    card_uuid, app_context = s.card(CANARY_PATIENT)
    from_card = run_launch(
        s.browser(), s.launch(CANARY_PATIENT, app_context, encounter=CANARY_ENCOUNTER)
    )
    from_menu = run_launch(s.browser(), menu_launch(s, CANARY_PATIENT, encounter=CANARY_ENCOUNTER))
    for done in (from_card, from_menu):
        assert done.final.status_code == 200 and RISK.search(done.final.text)
        answered = done.client.post(
            f"{s.url}/smart/feedback",
            data={
                "s": handle_of(done.locations[-1]),
                "csrf": csrf_of(done.final.text),
                "outcome": "accepted",
            },
        )
        assert answered.status_code == 303
    assert len(s.db.rows("SELECT 1 FROM web_sessions")) >= 2
    menu_rows = [r for r in audit_rows(s, CANARY_PATIENT) if r["hook"] == "smart-launch"]
    assert len(menu_rows) == 1 and menu_rows[0]["encounter_pseudonym"]
    text = _database_text(s)
    assert card_uuid in text  # the search sees the rows
    assert CANARY_PATIENT not in text
    assert CANARY_ENCOUNTER not in text
