"""The dashboard and the approvals queue in a real browser, on real decisions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot
from approvals.models import ApprovalRequest, CapBump
from conftest import card_for

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def world(
    transactional_db: None, django_db_serialized_rollback: None, provision: Any, network: Any
) -> dict[str, Any]:
    """(Requested before `page`: the migrations' rows must be put back first.) An agent
    that spent $499 of its $500 daily cap and was declined $5 (a pending
    request), and a user for each role."""
    agent = provision(name="claude-code-main", email="lead@acme.dev")
    card = card_for(agent, "aws")
    assert network.authorize(card, "499.00").json()["decision"] == "approved"
    declined = network.authorize(card, "5.00").json()
    assert declined["reason"] == "daily_cap_exceeded"
    for username, role in (("finance", "Finance"), ("viewer", "Viewer")):
        user = User.objects.create_user(username=username, password=PASSWORD)
        user.groups.add(Group.objects.get(name=role))
    return {"agent": agent, "card": card, "approval_id": declined["approval_id"]}


def sign_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()


def test_the_dashboard_shows_the_spend_and_the_decline(world: dict, page: Page) -> None:
    sign_in(page, "finance")
    expect(page.get_by_test_id("day-spent-USD")).to_have_text("499.00 USD")
    expect(page.get_by_text("daily_cap_exceeded")).to_be_visible()
    expect(page.get_by_role("cell", name="claude-code-main").first).to_be_visible()
    # The panels that load after the page: the chart and the vendors swap in.
    expect(page.get_by_test_id("daily-chart-USD")).to_be_visible()
    expect(page.get_by_test_id("vendor-spend")).to_contain_text("499.00 USD")
    expect(page.get_by_test_id("top-traces")).to_contain_text("No spend on a trace")
    expect(page.get_by_test_id("panel-loading")).to_have_count(0)
    screenshot(page, "dashboard-with-spend")


def test_approving_in_the_queue_bumps_the_cap(world: dict, page: Page, network: Any) -> None:
    sign_in(page, "finance")
    page.get_by_role("link", name="Approvals").click()
    expect(page.get_by_role("heading", name="Approvals", exact=True)).to_be_visible()
    screenshot(page, "approvals-pending")
    approval_id = world["approval_id"]
    page.get_by_label(f"Amount for request {approval_id}").fill("20.00")
    page.get_by_label(f"Note for request {approval_id}").fill("one-off eval run")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_have_text(f"Approved request {approval_id}.")
    expect(page.get_by_text("Nothing waits for a decision.")).to_be_visible()
    screenshot(page, "approvals-decided")
    request = ApprovalRequest.objects.get(pk=approval_id)
    assert (request.status, request.decided_via, request.decided_by) == (
        "approved",
        "portal",
        "finance",
    )
    assert str(CapBump.objects.get(approval=request).amount.amount) == "20.00"
    # The cap is bumped: the declined charge passes now.
    assert network.authorize(world["card"], "5.00").json()["decision"] == "approved"


def test_a_viewer_finds_no_approve_button(world: dict, page: Page) -> None:
    sign_in(page, "viewer")
    page.goto("/approvals/")
    expect(page.get_by_text("claude-code-main").first).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    # A forged POST from the viewer's own session is refused on the server.
    status = page.evaluate(
        """async (id) => {
            const token = document.cookie.match(/csrftoken=([^;]+)/)[1];
            const answer = await fetch(`/approvals/${id}/approve`, {
                method: "POST", headers: {"X-CSRFToken": token}});
            return answer.status;
        }""",
        world["approval_id"],
    )
    assert status == 403
    assert ApprovalRequest.objects.get(pk=world["approval_id"]).status == "pending"


def test_freezing_a_card_with_a_reason_declines_its_next_charge(
    world: dict, page: Page, network: Any
) -> None:
    User.objects.create_superuser(username="root", password=PASSWORD)
    sign_in(page, "root")
    page.get_by_role("link", name="Agents", exact=True).click()
    page.get_by_role("link", name="claude-code-main").click()
    expect(page.get_by_test_id("budget-day")).to_have_text("499.00 USD")
    screenshot(page, "agent")
    page.get_by_label("Reason to freeze the Amazon Web Services (AWS) card").fill(
        "prompt injection suspected"
    )
    page.get_by_role("row", name="Amazon Web Services").get_by_role("button", name="Freeze").click()
    expect(page.get_by_role("status")).to_contain_text("Frozen")
    screenshot(page, "agent-frozen")
    assert network.authorize(world["card"], "1.00").json()["reason"] == "card_frozen"


def test_filtering_the_ledger_and_downloading_the_csv(world: dict, page: Page) -> None:
    sign_in(page, "finance")
    page.get_by_role("link", name="Ledger", exact=True).click()
    expect(page.get_by_test_id("ledger-totals")).to_contain_text("499.00 USD")
    page.get_by_label("Vendor").fill("openai")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("ledger-totals")).to_have_text("No entries match.")
    page.get_by_label("Vendor").fill("aws")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_test_id("ledger-totals")).to_contain_text("499.00 USD")
    screenshot(page, "ledger")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    lines = open(download.value.path(), encoding="utf-8").read().splitlines()  # noqa: SIM115
    assert lines[0].startswith("id,created_at,")
    assert len(lines) == 2
    assert ",aws," in lines[1]
