"""The feedback rules (docs/quality-views.md): one answer per card and user, a later one replacing
the earlier with both kept in the trail; the user is the SMART launch's ``fhirUser``, kept as a
keyed pseudonym. Real SMART stand-ins on loopback and real SQLite/PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import httpx

from cds_service.monitoring import queries
from cds_service.security.pseudonym import pseudonym
from tests.utils.service import NOW
from tests.web import test_smart_app as base
from tests.web.test_smart_app import MI, Smart, csrf_of, handle_of, run_launch

smart = base.smart  # the stand-ins' fixtures, one service per backend for this module too
s = base.s


def answer(s: Smart, card_context: str, pid: str, user: str | None, **form: str) -> httpx.Client:
    """A clinician (``user``: fhirUser, or None when the EHR sends no id token) opens the app
    from the card and answers."""
    done = run_launch(s.browser(), s.launch(pid, card_context, user=user))
    assert done.final.status_code == 200
    posted = done.client.post(
        f"{s.url}/smart/feedback",
        data={"s": handle_of(done.locations[-1]), "csrf": csrf_of(done.final.text), **form},
    )
    assert posted.status_code == 303, posted.text
    return done.client


def trail(s: Smart, card_uuid: str) -> list[dict[str, object]]:
    return s.db.rows(
        "SELECT outcome, user_pseudonym, is_current FROM v_feedback WHERE card_uuid = :u "
        "ORDER BY feedback_id",
        u=card_uuid,
    )


def test_one_answer_per_card_and_user_and_the_trail_keeps_both(s: Smart) -> None:
    pid = "syn-mi-rules"
    card_uuid, context = s.card(pid)
    first = answer(s, context, pid, "Practitioner/dr-a", outcome="accepted")
    s.clock.now = NOW + timedelta(minutes=5)
    # the same clinician changes their mind from the same page
    page = first.get(f"{s.url}/smart/app", params={"s": _handle(first)})
    assert "id='feedback-done'" in page.text and "id='feedback-change'" in page.text
    changed = first.post(
        f"{s.url}/smart/feedback",
        data={
            "s": _handle(first),
            "csrf": csrf_of(page.text),
            "outcome": "overridden",
            "reason": "disagree",
        },
    )
    assert changed.status_code == 303
    s.clock.now = NOW + timedelta(minutes=6)
    answer(s, context, pid, "Practitioner/dr-b", outcome="accepted")
    rows = trail(s, card_uuid)
    key = s.settings.effective_pseudonym_key
    a = pseudonym(key, "User", f"{s.ehr.fhir_base}/Practitioner/dr-a")
    b = pseudonym(key, "User", f"{s.ehr.fhir_base}/Practitioner/dr-b")
    assert [(r["outcome"], r["user_pseudonym"], bool(r["is_current"])) for r in rows] == [
        ("accepted", a, False),
        ("overridden", a, True),
        ("accepted", b, True),
    ]
    assert "dr-a" not in repr(s.db.rows("SELECT * FROM card_feedback"))


def _handle(client: httpx.Client) -> str:
    """The launch handle of the client's only app cookie."""
    (name,) = [n for n in client.cookies if n.startswith("cds_smart_")]
    return name.removeprefix("cds_smart_")


def test_answers_without_a_known_user_are_grouped_per_card(s: Smart) -> None:
    pid = "syn-mi-rules-anon"
    card_uuid, context = s.card(pid)
    answer(s, context, pid, None, outcome="accepted")
    s.clock.now = NOW + timedelta(minutes=1)
    answer(s, context, pid, None, outcome="overridden", reason="already-known")
    rows = trail(s, card_uuid)
    assert [(r["outcome"], r["user_pseudonym"], bool(r["is_current"])) for r in rows] == [
        ("accepted", None, False),
        ("overridden", None, True),
    ]


def test_cds_hooks_feedback_follows_the_same_rule(s: Smart) -> None:
    card_uuid, _ = s.card("syn-mi-rules-hooks")
    url = f"{s.url}/cds-services/{MI}/feedback"
    for outcome, at in (
        ("accepted", "2026-03-14T10:00:00Z"),
        ("overridden", "2026-03-14T10:05:00Z"),
    ):
        item = {"card": card_uuid, "outcome": outcome, "outcomeTimestamp": at}
        assert httpx.post(url, json={"feedback": [item]}, timeout=10).status_code == 200
    rows = trail(s, card_uuid)
    assert [(r["outcome"], bool(r["is_current"])) for r in rows] == [
        ("accepted", False),
        ("overridden", True),
    ]


def test_monitoring_counts_the_current_answers_as_the_view_does(s: Smart) -> None:
    pid = "syn-mi-rules-count"
    card_uuid, context = s.card(pid)
    answer(s, context, pid, "Practitioner/dr-c", outcome="accepted")
    s.clock.now = NOW + timedelta(minutes=2)
    answer(s, context, pid, "Practitioner/dr-c", outcome="overridden", reason="disagree")
    with s.db.engine.connect() as conn:
        counted = conn.execute(
            queries.feedback_counts(NOW - timedelta(days=1), NOW + timedelta(days=1))
        ).all()
    total = sum(int(r[-1]) for r in counted)
    current = s.db.rows(
        "SELECT count(*) AS n FROM v_feedback WHERE is_current AND model_name IS NOT NULL"
    )[0]["n"]
    every = s.db.rows("SELECT count(*) AS n FROM v_feedback WHERE model_name IS NOT NULL")[0]["n"]
    assert total == current and every > current
    assert [bool(r["is_current"]) for r in trail(s, card_uuid)] == [False, True]


def test_a_relaunch_shows_the_users_current_answer_and_only_theirs(s: Smart) -> None:
    pid = "syn-mi-rules-relaunch"
    _, context = s.card(pid)
    answer(s, context, pid, "Practitioner/dr-d", outcome="overridden", reason="already-known")
    again = run_launch(s.browser(), s.launch(pid, context, user="Practitioner/dr-d")).final
    assert "id='feedback-done'" in again.text and "Risk already known" in again.text
    other = run_launch(s.browser(), s.launch(pid, context, user="Practitioner/dr-e")).final
    assert "id='feedback-done'" not in other.text and "value='accepted'" in other.text
    unknown = run_launch(s.browser(), s.launch(pid, context)).final
    assert "id='feedback-done'" not in unknown.text
