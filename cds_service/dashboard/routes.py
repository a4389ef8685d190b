"""Routes of this web area (filled in by its implementation)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
