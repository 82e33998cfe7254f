"""On a phone-sized screen every portal page fits the width: nothing scrolls sideways
(wide tables scroll inside their card) and the navigation wraps."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot

pytestmark = pytest.mark.browser

PASSWORD = "narrow-screen-password"
PAGES = {
    "dashboard": "/",
    "agents": "/agents/",
    "approvals": "/approvals/",
    "policies": "/policies/",
    "vendors": "/vendors/",
    "ledger": "/ledger/",
    "traces": "/traces/",
    "audit": "/audit/",
}


# The elements that stick out, to say which when a page does.
WIDER_THAN_THE_SCREEN = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
    .slice(0, 5).map(e => `${e.tagName}.${e.className} in ${e.parentElement.tagName}`)"""


@pytest.fixture
def demo(transactional_db: None, django_db_serialized_rollback: None) -> None:
    call_command("seed_demo", admin_password=PASSWORD, stdout=StringIO())


def test_every_page_fits_a_phone(demo: None, page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("finance")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    for name, url in PAGES.items():
        page.goto(url)
        screenshot(page, f"narrow-{name}")  # once the panels loaded after it are in
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        wide = page.evaluate(WIDER_THAN_THE_SCREEN) if overflow > 0 else []
        assert overflow <= 0, f"{url} scrolls {overflow}px sideways: {wide}"
