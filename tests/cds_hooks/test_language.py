"""The words and the clock of a card: one time format in the display time zone, numbers and
reasons as each language writes them."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest

from cds_service.cds_hooks import language
from cds_service.cds_hooks.language import (
    format_time,
    missing_reason_text,
    number_text,
    phrase,
    unit_text,
)


def test_one_time_format_in_the_display_zone_with_summer_time() -> None:
    winter, summer = (
        datetime(2026, 1, 5, 13, 2, tzinfo=UTC),
        datetime(2026, 7, 5, 13, 2, tzinfo=UTC),
    )
    assert format_time(winter) == "2026-01-05 14:02 CET"
    assert format_time(summer) == "2026-07-05 15:02 CEST"
    assert format_time(winter, "UTC") == "2026-01-05 13:02 UTC"
    assert format_time(datetime(2026, 1, 5, 23, 30, tzinfo=UTC)) == "2026-01-06 00:30 CET"


@pytest.mark.parametrize(
    ("value", "lang", "decimals", "text"),
    [
        (37.84, "en", 1, "37.8"),
        (37.84, "nl", 1, "37,8"),
        (12.0, "nl", None, "12"),
        (0.934, "nl", None, "0,934"),
        (-0.04, "en", 0, "0"),
        (1500.4, "en", None, "1500"),
    ],
)
def test_numbers(value: float, lang: str, decimals: int | None, text: str) -> None:
    assert number_text(value, lang, decimals) == text


def test_units_as_written() -> None:
    assert (unit_text("%", "en"), unit_text("/min", "nl"), unit_text("mm[Hg]", "en")) == (
        "%",
        "/min",
        " mmHg",
    )
    assert (unit_text("d", "nl", 1), unit_text("d", "nl", 3), unit_text("a", "nl")) == (
        " dag",
        " dagen",
        " jaar",
    )
    assert unit_text("{count}", "en") == ""


@pytest.mark.parametrize(
    ("reason", "en", "nl"),
    [
        ("no value in window", "no value in the time window", "geen waarde in de tijdsperiode"),
        (
            "stale: last value 2026-03-14T07:10:00+00:00, before the window",
            "stale: last value 2026-03-14 08:10 CET, before the time window",
            "verouderd: laatste waarde 2026-03-14 08:10 CET, vóór de tijdsperiode",
        ),
        (
            "value 412 outside plausible range [20, 300]",
            "value 412 outside the plausible range 20–300",
            "waarde 412 buiten het plausibele bereik 20–300",
        ),
        (
            "FHIR server did not answer in time",
            "the FHIR server did not answer in time",
            "de FHIR-server antwoordde niet op tijd",
        ),
        (None, "missing", "ontbreekt"),
        ("a reason no rule knows", "a reason no rule knows", "a reason no rule knows"),
    ],
)
def test_missing_reasons_per_language(reason: str | None, en: str, nl: str) -> None:
    assert (missing_reason_text(reason, "en"), missing_reason_text(reason, "nl")) == (en, nl)


def test_every_phrase_exists_in_both_languages_with_the_same_placeholders() -> None:
    import string

    doc = tomllib.loads(language._PHRASES.read_text(encoding="utf-8"))
    assert set(doc["en"]) == set(doc["nl"])
    for key, text in doc["en"].items():
        fields = {f for _, f, _, _ in string.Formatter().parse(text) if f}
        assert fields == {f for _, f, _, _ in string.Formatter().parse(doc["nl"][key]) if f}, key
        assert doc["en"][key] != doc["nl"][key] or key.startswith("elapsed_") or key in ("scale",)
    assert phrase("nl", "raises", pp="2,5") == "verhoogt het met 2,5 procentpunt"
