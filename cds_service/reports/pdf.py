"""HTML to PDF (and a PNG of the first page) with headless Chromium, the browser the tests
already drive: the same layout engine as the screen, no second renderer to keep in step. The
page is a local file with no external resources; networking is switched off for the print."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["ChromiumMissing", "find_chromium", "print_pdf", "screenshot"]

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--proxy-server=127.0.0.1:9",  # nothing leaves the machine, even by accident
)
TIMEOUT_SECONDS = 120


class ChromiumMissing(RuntimeError):
    """No Chromium binary: set CDS_CHROMIUM or install chromium."""


def find_chromium() -> str:
    chosen = os.environ.get("CDS_CHROMIUM")
    if chosen:
        if not Path(chosen).is_file():
            raise ChromiumMissing(f"CDS_CHROMIUM={chosen} is not a file")
        return chosen
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ChromiumMissing("no chromium found: install it or set CDS_CHROMIUM to its path")


def _run(html: Path, *extra: str) -> None:
    with tempfile.TemporaryDirectory(prefix="cds-chromium-") as profile:
        cmd = [find_chromium(), *_ARGS, f"--user-data-dir={profile}", *extra]
        try:
            done = subprocess.run(  # noqa: S603 - fixed arguments, a local file
                [*cmd, html.resolve().as_uri()],
                capture_output=True,
                timeout=TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"chromium did not finish in {TIMEOUT_SECONDS} s") from exc
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise RuntimeError(f"chromium exited {done.returncode}: {' | '.join(tail)}")


def print_pdf(html: Path, pdf: Path) -> Path:
    """Print ``html`` to ``pdf`` (page size and margins from the page's @page rule)."""
    pdf.unlink(missing_ok=True)
    _run(html, "--no-pdf-header-footer", f"--print-to-pdf={pdf.resolve()}")
    if not pdf.is_file() or pdf.stat().st_size == 0:
        raise RuntimeError(f"chromium wrote no PDF to {pdf}")
    return pdf


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 900) -> Path:
    """The top of the page as a PNG (the docs' picture of the report)."""
    png.unlink(missing_ok=True)
    _run(
        html,
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={png.resolve()}",
    )
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return png
