"""Full-page screenshots, kept as artefacts under artifacts/screenshots/ (git-ignored)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from playwright.sync_api import Page, expect


def screenshot(page: Page, name: str) -> Path:
    """Save the whole page as artifacts/screenshots/<name>.png and return the path, once
    the panels it loads after itself (the dashboard's) are in."""
    expect(page.get_by_test_id("panel-loading")).to_have_count(0)
    path = Path(settings.BASE_DIR) / "artifacts" / "screenshots" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
