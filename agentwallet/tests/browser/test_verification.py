"""A principal's verification in a real browser: the agent's page says how charges are
held until they verify and lets their lead mail a new link; the link's page verifies on
a click, and the agent's page then shows them verified."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot
from wallets.models import Agent, Principal

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def demo(transactional_db: None, django_db_serialized_rollback: None) -> None:
    call_command("seed_demo", admin_password=PASSWORD, stdout=StringIO())


def test_a_lead_mails_a_new_link_and_the_principal_verifies(demo: None, page: Page) -> None:
    agent = Agent.objects.get(name="claude-code-main")
    Principal.objects.filter(pk=agent.principal_id).update(
        email_verified_at=None, verification_sent_at=None
    )
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("lead")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.goto(f"/agents/{agent.pk}/")
    expect(page.get_by_test_id("principal-verified")).to_have_text("email not verified")
    notice = page.get_by_test_id("verification-notice")
    expect(notice).to_contain_text("each card charge is held to 25.00 USD")
    screenshot(page, "agent-principal-unverified")
    page.get_by_test_id("resend-verification").click()
    expect(page.get_by_role("status").first).to_contain_text("on its way to alice@acme.dev")
    assert [message.to for message in mail.outbox] == [["alice@acme.dev"]]
    link = re.search(r"https?://\S+(/principals/verify/\S+/)", mail.outbox[0].body).group(1)

    page.goto(link)
    page.get_by_role("button", name="Verify my email").click()
    expect(page.get_by_test_id("verified")).to_contain_text("alice@acme.dev is verified")
    screenshot(page, "principal-verified")

    page.goto(f"/agents/{agent.pk}/")
    expect(page.get_by_test_id("principal-verified")).to_have_text("email verified")
    expect(page.get_by_test_id("verification-notice")).to_have_count(0)
