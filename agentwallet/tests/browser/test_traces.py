"""The trace pages in a real browser, on the demo's data (`manage.py seed_demo`)."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from playwright.sync_api import Page, expect

from agentwallet.demo import EXAMPLE_AMOUNT, EXAMPLE_TRACE
from agentwallet.tests.browser.screenshots import screenshot
from cards.models import Card

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def demo(transactional_db: None, django_db_serialized_rollback: None, network: Any) -> None:
    """(Requested before `page`: the migrations' rows must be put back first.) The demo's
    four weeks of spend, then README's example charge on PR-4823 made now (so the trace
    has spend this month whatever the hour), and a Finance user."""
    call_command("seed_demo", stdout=StringIO())
    card = Card.objects.get(
        agent__name="claude-code-main", vendor__slug="anthropic", is_ephemeral=False
    )
    charge = network.authorize(card, str(EXAMPLE_AMOUNT), trace_id=EXAMPLE_TRACE).json()
    assert charge["decision"] == "approved", charge
    user = User.objects.create_user(username="fiona", password=PASSWORD)
    user.groups.add(Group.objects.get(name="Finance"))


def sign_in(page: Page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("fiona")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()


def test_finance_finds_a_trace_and_sees_its_spend_over_time(demo: None, page: Page) -> None:
    sign_in(page)
    page.get_by_role("link", name="Traces", exact=True).click()
    expect(page.get_by_role("heading", name="Traces", exact=True)).to_be_visible()
    table = page.get_by_test_id("trace-table")
    expect(table.get_by_role("link", name=EXAMPLE_TRACE)).to_be_visible()
    expect(table.get_by_role("columnheader", name="Per-trace cap")).to_be_visible()
    screenshot(page, "traces-list")

    # The search swaps the rows in place and pushes its URL; back brings the list back.
    page.get_by_label("Trace id starts with").fill(EXAMPLE_TRACE[:5])
    expect(page).to_have_url(re.compile(rf"/traces/\?q={EXAMPLE_TRACE[:5]}$"))
    expect(table.locator("tbody tr")).not_to_have_count(0)
    for trace in table.locator("tbody tr td:first-child").all_inner_texts():
        assert trace.startswith(EXAMPLE_TRACE[:5]), trace
    page.go_back()
    expect(page).to_have_url(re.compile(r"/traces/$"))
    expect(page.get_by_label("Trace id starts with")).to_have_value("")

    page.get_by_test_id("trace-table").get_by_role("link", name=EXAMPLE_TRACE).click()
    expect(page.get_by_role("heading", name=f"Trace {EXAMPLE_TRACE}")).to_be_visible()
    chart = page.get_by_test_id("trace-chart-USD").locator("svg")
    expect(chart).to_be_visible()
    expect(chart.locator("rect title").first).to_contain_text("Anthropic")
    days = page.get_by_test_id("trace-days-USD")
    expect(days).to_be_visible()
    expect(days.get_by_role("rowheader", name="In all")).to_be_visible()
    caps = page.get_by_test_id("trace-caps")
    expect(caps.get_by_role("link", name="claude-code-main")).to_be_visible()
    expect(page.get_by_test_id("trace-entries").locator("tbody tr").first).to_contain_text(
        "claude-code-main"
    )
    expect(page.get_by_role("link", name="Open in the ledger")).to_have_attribute(
        "href", f"/ledger/?trace_id={EXAMPLE_TRACE}"
    )
    screenshot(page, "trace-detail")
