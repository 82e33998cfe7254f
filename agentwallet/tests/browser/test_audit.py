"""One-click decide on the dashboard, then the audit page shows who did it, in a real
browser."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot
from agentwallet.tests.browser.test_portal_pages import sign_in, world  # noqa: F401 (fixture)
from approvals.models import ApprovalRequest

pytestmark = pytest.mark.browser


def test_decide_on_the_dashboard_then_read_it_in_the_audit(
    world: dict,  # noqa: F811
    page: Page,
    network: Any,
) -> None:
    sign_in(page, "finance")
    page.get_by_role("button", name="Approve 5.00 USD for claude-code-main").click()
    expect(page.get_by_role("status")).to_have_text(f"Approved request {world['approval_id']}.")
    expect(page.get_by_text("Nothing waits for a decision.")).to_be_visible()
    screenshot(page, "dashboard-decided")
    assert ApprovalRequest.objects.get(pk=world["approval_id"]).decided_via == "portal"
    assert network.authorize(world["card"], "5.00").json()["decision"] == "approved"

    page.get_by_role("link", name="Audit", exact=True).click()
    expect(page.get_by_role("heading", name="Audit", exact=True)).to_be_visible()
    table = page.get_by_test_id("audit-table")
    expect(table.get_by_text("Approval granted")).to_be_visible()
    expect(table.get_by_text("Cap bumped")).to_be_visible()
    expect(table.get_by_text("Agent provisioned")).to_be_visible()
    screenshot(page, "audit")
    page.get_by_label("What").select_option("cap.")
    expect(table.get_by_text("Agent provisioned")).to_have_count(0)
    expect(page.get_by_test_id("audit-table").get_by_text("Cap bumped")).to_be_visible()
    assert "family=cap." in page.url
    page.go_back()
    expect(page.get_by_test_id("audit-table").get_by_text("Agent provisioned")).to_be_visible()
