"""The SMART app's words: every phrase in every language (a missing one stops the service at
start-up), every refusal the app's code words in English has its wording per language, and the
one time format in the configured zone."""

from __future__ import annotations

import ast
import string
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cds_service.cds_hooks.language import load_phrases
from cds_service.web.smart import session
from cds_service.web.smart.session import card_problem
from cds_service.web.smart.view import CardRecord
from cds_service.web.smart.words import PHRASES_FILE, Words

SMART = Path(session.__file__).parent


def _fields(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f}


def test_every_app_phrase_in_both_languages_with_the_same_placeholders() -> None:
    doc = tomllib.loads(PHRASES_FILE.read_text(encoding="utf-8"))
    assert set(doc["en"]) == set(doc["nl"])
    for key, text in doc["en"].items():
        assert _fields(text) == _fields(doc["nl"][key]), key
    for rule in doc["messages"] + doc["measurements"]:
        assert _fields(rule["en"]) == _fields(rule["nl"]), rule["en"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[en]\na = "x"\nb = "y"\n[nl]\na = "x"\n',
            r"\[nl\] must have the keys of \[en\] \(\['b'\]\)",
        ),
        ('[en]\na = "x"\n[nl]\na = "x"\n[[messages]]\npattern = "p"\nen = "p"\n', "no \\['nl'\\]"),
    ],
)
def test_a_missing_translation_fails_when_the_file_is_read(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "app_phrases.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        load_phrases(path)


def _literal_texts(node: ast.AST, constants: dict[str, str]) -> list[str]:
    """A title or message as the code writes it; f-string parts filled with sample values."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    if isinstance(node, ast.JoinedStr):
        return [
            "".join(str(v.value) if isinstance(v, ast.Constant) else sample for v in node.values)
            for sample in ("10", "invalid_grant")
        ]
    if isinstance(node, ast.IfExp):
        return _literal_texts(node.body, constants) + _literal_texts(node.orelse, constants)
    return []


def _refusals() -> list[list[str]]:
    found = []
    for path in sorted(SMART.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets
            if isinstance(t, ast.Name) and isinstance(n.value.value, str)
        }
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "SignInError":
                texts = [kw.value for kw in call.keywords if kw.arg == "title"]
                for node in [*call.args[1:2], *texts]:
                    variants = _literal_texts(node, constants)
                    if variants:
                        found.append(variants)
    return found


def test_every_refusal_of_the_app_is_worded_in_dutch() -> None:
    refusals = _refusals()
    assert len(refusals) > 50  # titles and messages of the launch, the page and the response
    nl, en = Words("nl"), Words("en")
    for variants in refusals:
        translated = [v for v in variants if nl.message(v) != v]
        assert translated, variants[0]
        assert all(en.message(v) == v for v in variants)


def test_card_problems_are_worded_in_dutch() -> None:
    def card(same_patient: bool) -> CardRecord:
        now = datetime.now(UTC)
        return CardRecord("c", "svc", "m", "1", "risk", 0.2, "low", now, same_patient)

    problems = [
        card_problem({}, None, "svc"),
        card_problem({"card": "c"}, card(False), "svc"),
        card_problem({"card": "c"}, card(True), "other"),
    ]
    nl = Words("nl")
    for problem in problems:
        assert problem is not None and nl.message(problem) != problem, problem


def test_times_and_placeholders() -> None:
    moment = datetime(2026, 7, 5, 13, 2, tzinfo=UTC)
    assert Words("nl", "Asia/Tokyo").time(moment) == "2026-07-05 22:02 JST"
    assert Words("en").time(moment) == "2026-07-05 15:02 CEST"
    assert Words("nl")("recorded", response="Akkoord", time="t") == "Akkoord. Vastgelegd t, dank u."
    launch = "The EHR refused the launch (access_denied)."
    assert Words("nl").message(launch) == "Het EPD weigerde het starten (access_denied)."


def test_response_time_in_the_display_zone_and_old_session_text_kept() -> None:
    from cds_service.web.smart.page import _when_given

    tokyo = Words("nl", "Asia/Tokyo")
    assert _when_given("2026-03-14T10:30:00+00:00", tokyo) == "2026-03-14 19:30 JST"
    assert _when_given("14 Mar 2026 10:30 UTC", tokyo) == "14 Mar 2026 10:30 UTC"
