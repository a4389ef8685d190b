"""Where browser tests put their screenshots: a temporary folder, or with
``CDS_SCREENSHOT_DIR=docs/images`` the documentation's images (to refresh them on purpose; a test
run must not rewrite tracked files)."""

from __future__ import annotations

import os
from pathlib import Path


def screenshot_dir(tmp: Path) -> Path:
    chosen = os.environ.get("CDS_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
