"""The policy and vendor pages in a real browser, on the demo's data (`manage.py
seed_demo`), signed in as its Finance user."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot
from policies.models import Policy, PolicyChange, Vendor

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def demo(transactional_db: None, django_db_serialized_rollback: None) -> None:
    """(Requested before `page`: the migrations' rows must be put back first.) The demo's
    policies, agents and spend, and its portal users (`finance` among them)."""
    call_command("seed_demo", admin_password=PASSWORD, stdout=StringIO())


def sign_in(page: Page, username: str = "finance") -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()


def test_finance_edits_a_policy_and_a_refused_value_changes_nothing(demo: None, page: Page) -> None:
    sign_in(page)
    page.get_by_role("link", name="Policies", exact=True).click()
    expect(page.get_by_role("heading", name="Policies", exact=True)).to_be_visible()
    table = page.get_by_test_id("policy-table")
    for name in ("Starter", "CI (tight)", "EU infrastructure"):
        expect(table.get_by_role("link", name=name)).to_be_visible()
    expect(table.get_by_role("row", name=re.compile("^EU infrastructure"))).to_contain_text(
        "300.00 EUR"
    )
    screenshot(page, "policies-list")

    table.get_by_role("link", name="Starter").click()
    expect(page.get_by_role("heading", name="Starter", exact=True)).to_be_visible()
    agents = page.get_by_test_id("policy-agents")
    expect(agents.get_by_role("link", name="claude-code-main")).to_be_visible()
    daily = page.get_by_label("Daily cap (rolling 24 hours)")
    expect(daily).to_have_value("500.00")

    # Above the monthly cap: refused beside the field, nothing stored.
    daily.fill("20000")
    page.get_by_role("button", name="Save").click()
    error = page.get_by_test_id("error-daily_cap")
    expect(error).to_have_text("The daily cap cannot exceed the monthly cap.")
    expect(daily).to_have_attribute("aria-invalid", "true")
    expect(daily).to_have_value("20000")  # what was typed stays
    expect(page.get_by_role("alert")).to_contain_text("nothing was saved")
    screenshot(page, "policy-refused-value")
    daily.fill("-5")
    page.get_by_role("button", name="Save").click()
    expect(error).to_contain_text("decimal string")
    page.reload()
    expect(page.get_by_label("Daily cap (rolling 24 hours)")).to_have_value("500.00")
    assert Policy.objects.get(slug="starter").daily_cap.amount == 500
    assert not PolicyChange.objects.filter(policy__slug="starter").exists()

    # A good value saves, and the history says who changed it from what to what.
    page.get_by_label("Daily cap (rolling 24 hours)").fill("450.00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("policy-saved")).to_have_text("Saved: daily cap.")
    expect(page.get_by_label("Daily cap (rolling 24 hours)")).to_have_value("450.00")
    history = page.get_by_test_id("policy-history")
    expect(history.locator("tbody tr").first).to_contain_text("user:finance")
    expect(history.locator("tbody tr").first).to_contain_text("500.00 USD → 450.00 USD")
    screenshot(page, "policy-detail")
    page.reload()
    expect(page.get_by_label("Daily cap (rolling 24 hours)")).to_have_value("450.00")

    # A viewer sees the same values, read-only.
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "viewer")
    page.goto("/policies/starter/")
    expect(page.get_by_test_id("value-daily_cap")).to_have_text("450.00 USD")
    expect(page.get_by_role("button", name="Save")).to_have_count(0)
    screenshot(page, "policy-read-only")


def test_finance_searches_the_vendors_and_adds_one(demo: None, page: Page) -> None:
    sign_in(page)
    page.get_by_role("link", name="Vendors", exact=True).click()
    expect(page.get_by_role("heading", name="Vendors", exact=True)).to_be_visible()
    table = page.get_by_test_id("vendor-table")
    expect(table.get_by_text("Amazon Web Services (AWS)")).to_be_visible()

    # The search swaps the rows in place and pushes its URL.
    page.get_by_label("Search").fill("hetzner")
    expect(page).to_have_url(re.compile(r"/vendors/\?q=hetzner"))
    expect(table.locator("tbody tr")).to_have_count(1)
    expect(table).to_contain_text("HETZNER ONLINE GMBH")

    form: Any = page.get_by_role("region", name="Add vendor")
    form.get_by_label("Slug").fill("neon")
    form.get_by_label("Name").fill("Neon")
    form.get_by_label("Category").select_option(label="Data")
    form.get_by_label("MCCs").fill("12a4")
    form.get_by_label("Statement descriptors").fill("NEON INC\nNEON.TECH")
    form.get_by_role("button", name="Add vendor").click()
    expect(page.get_by_test_id("error-mccs")).to_contain_text("“12a4”")
    assert not Vendor.objects.filter(slug="neon").exists()

    form.get_by_label("MCCs").fill("5734, 7372")
    form.get_by_role("button", name="Add vendor").click()
    expect(page).to_have_url(re.compile(r"/vendors/\?q=neon$"))
    expect(page.get_by_role("status")).to_have_text("Added the vendor Neon (neon).")
    row = page.get_by_test_id("vendor-table").locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("custom")
    expect(row).to_contain_text("5734, 7372")
    expect(row).to_contain_text("NEON.TECH")
    page.get_by_label("Search").fill("")
    expect(row).not_to_have_count(1)
    screenshot(page, "vendors")


def test_what_if_replays_the_form_over_the_demo_and_saves_nothing(demo: None, page: Page) -> None:
    sign_in(page)
    page.goto("/policies/starter/")
    daily = page.get_by_label("Daily cap (rolling 24 hours)")
    daily.fill("1.00")
    page.get_by_role("button", name="What if (last 30 days)").click()
    result = page.get_by_test_id("what-if")
    expect(result).to_contain_text("With these values")
    declined = int(page.get_by_test_id("what-if-declined").inner_text())
    assert declined > int(page.get_by_test_id("actual-declined").inner_text())
    expect(page.get_by_test_id("what-if-change")).to_contain_text("would have been declined")
    screenshot(page, "policy-what-if")
    # A what-if saves nothing: the policy keeps its cap, and the form its typed value.
    assert Policy.objects.get(slug="starter").daily_cap.amount == 500
    expect(daily).to_have_value("1.00")
