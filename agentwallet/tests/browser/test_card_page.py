"""Cards in a real browser, on the demo's data (`manage.py seed_demo`), as its `lead`:
issue an ephemeral card and see its number once, then open a card's page and change
its monthly cap, a wrong value first."""

from __future__ import annotations

import re
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from djmoney.money import Money
from playwright.sync_api import Page, expect

from agentwallet.models import AuditAction, AuditEvent
from agentwallet.tests.browser.screenshots import screenshot
from cards.crypto import decrypt_number
from cards.models import Card, CardEvent

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def demo(transactional_db: None, django_db_serialized_rollback: None) -> dict[str, Any]:
    """(Requested before `page`: the migrations' rows must be put back first.) The demo's
    four weeks of spend and its portal users, `lead` leading claude-code-main's team."""
    call_command("seed_demo", admin_password=PASSWORD, stdout=StringIO())
    card = Card.objects.get(
        agent__name="claude-code-main", vendor__slug="anthropic", is_ephemeral=False
    )
    return {"card": card, "agent": card.agent}


def sign_in(page: Page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()


def test_a_lead_issues_a_card_then_changes_a_cards_cap(demo: dict, page: Page) -> None:
    sign_in(page, "lead")
    page.get_by_role("link", name="Agents", exact=True).click()
    page.get_by_role("link", name="claude-code-main").click()
    expect(page.get_by_role("heading", name=re.compile("claude-code-main"))).to_be_visible()
    card = demo["card"]
    row = page.get_by_test_id(f"card-row-{card.pk}")
    expect(row.get_by_test_id("last-use")).not_to_have_text("never")

    # Issue an ephemeral card: its number, expiry and CVC are in this answer only.
    page.get_by_label("Vendor", exact=True).select_option("openai")
    page.get_by_label("Monthly cap (USD, optional)").fill("40.00")
    page.get_by_label("Lifetime (optional)").fill("2")
    page.get_by_label("Lifetime unit").select_option("hours")
    page.get_by_label("Ephemeral").check()
    page.get_by_role("button", name="Issue card").click()
    expect(page.get_by_test_id("new-card")).to_be_visible()
    issued = Card.objects.filter(agent=demo["agent"], vendor__slug="openai", is_ephemeral=True)
    new = issued.latest("created_at")
    number = decrypt_number(new.number_ciphertext)
    expect(page.get_by_test_id("new-card-number")).to_have_text(number)
    expect(page.get_by_test_id("new-card-cvc")).to_have_text(re.compile(r"^\d{3,4}$"))
    assert new.monthly_cap == Money("40.00", "USD")
    screenshot(page, "agent-card-issued")
    # Loaded again (not reloaded: that would post the form again), the page has only
    # the last four digits.
    page.goto(f"/agents/{demo['agent'].pk}/")
    expect(page.get_by_test_id("new-card")).to_have_count(0)
    expect(page.get_by_text(number)).to_have_count(0)
    expect(page.get_by_test_id(f"card-row-{new.pk}")).to_contain_text(f"•••• {new.last4}")
    screenshot(page, "agent-with-cards")

    # The standing Anthropic card's page, with four weeks of authorizations.
    page.get_by_test_id(f"card-row-{card.pk}").get_by_role("link", name=card.last4).click()
    expect(page.get_by_role("heading", name=f"Anthropic card •••• {card.last4}")).to_be_visible()
    expect(page.get_by_test_id("card-authorizations").locator("tbody tr")).not_to_have_count(0)
    expect(page.get_by_test_id("lock-mcc")).to_contain_text("on")
    spent = page.get_by_test_id("card-cap-spent").inner_text()

    # Declines only, swapped in place with the URL pushed.
    page.get_by_label("Decision").select_option("declined")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"\?decision=declined$"))
    declined = page.get_by_test_id("card-authorizations").locator("tbody tr")
    expect(declined.first).to_contain_text("declined")
    for badge in page.get_by_test_id("card-authorizations").locator(".badge").all_inner_texts():
        assert badge == "declined"
    screenshot(page, "card-declines")

    # A cap with a fraction of a cent: refused at the field, nothing changed.
    before = (card.monthly_cap, CardEvent.objects.filter(card=card).count())
    page.get_by_label("Card's monthly cap (USD)").fill("12.345")
    page.get_by_label("Why (optional, recorded)").fill("tighter for the eval week")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("cap-error")).to_contain_text("at most 2 decimal places")
    expect(page.get_by_label("Card's monthly cap (USD)")).to_have_value("12.345")
    card.refresh_from_db()
    assert (card.monthly_cap, CardEvent.objects.filter(card=card).count()) == before
    screenshot(page, "card-cap-error")

    page.get_by_label("Card's monthly cap (USD)").fill("750.00")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Saved: the card's monthly cap is 750.00 USD.")
    expect(page.get_by_test_id("card-cap")).to_have_text("750.00")
    expect(page.get_by_test_id("card-cap-spent")).to_have_text(spent)
    expect(page.get_by_test_id("card-events")).to_contain_text("tighter for the eval week")
    card.refresh_from_db()
    assert card.monthly_cap == Money("750.00", "USD")
    audit = AuditEvent.objects.get(action=AuditAction.CARD_CAP_CHANGED, object_id=str(card.pk))
    assert (audit.actor, audit.detail["to"]) == ("user:lead", "750.00")
    screenshot(page, "card-page")
