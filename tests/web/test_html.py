"""The shared HTML helpers escape everything that came from data."""

from __future__ import annotations

import pytest

from cds_service.web.html import document, esc, num, pct, table

HOSTILE = "<script>alert('x')</script> & \"quoted\""


def test_esc_escapes_markup_ampersands_and_both_quotes() -> None:
    assert esc(HOSTILE) == (
        "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &quot;quoted&quot;"
    )
    assert esc(42) == "42"


def test_document_escapes_the_title_and_keeps_the_markup_it_is_given() -> None:
    page = document(HOSTILE, "<main>body</main>", head="<link rel='stylesheet' href='/a.css'>")
    assert page.startswith("<!doctype html><html lang='en'><head><meta charset='utf-8'>")
    assert "<script>" not in page
    assert f"<title>{esc(HOSTILE)}</title>" in page
    assert "<main>body</main>" in page and "<link rel='stylesheet' href='/a.css'>" in page


def test_table_escapes_headers_cells_names_and_classes() -> None:
    out = table([HOSTILE], [[HOSTILE, 3]], cls="grid' onclick='x", name=HOSTILE, row_headers=True)
    assert "<script>" not in out and "onclick='x" not in out
    assert out.count(esc(HOSTILE)) == 3  # header, row header, data-table name
    assert f"<th scope='row'>{esc(HOSTILE)}</th><td>3</td>" in out


def test_raw_table_cells_are_markup_built_elsewhere() -> None:
    out = table(["a"], [["<strong>1</strong>"]], raw=True)
    assert "<td><strong>1</strong></td>" in out


@pytest.mark.parametrize(
    ("value", "digits", "shown"),
    [(None, 1, "–"), (0.1234, 1, "12.3%"), (1.0, 0, "100%"), (0.0, 1, "0.0%")],
)
def test_pct(value: float | None, digits: int, shown: str) -> None:
    assert pct(value, digits) == shown


@pytest.mark.parametrize(
    ("value", "digits", "shown"),
    [(None, 3, "–"), (0.5, 3, "0.500"), (0.00001, 3, "1.0e-05"), (0.0, 3, "0.000"), (12, 0, "12")],
)
def test_num(value: float | None, digits: int, shown: str) -> None:
    assert num(value, digits) == shown
