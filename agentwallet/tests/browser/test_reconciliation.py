"""The issuer reconciliation in a real browser: Finance finds a night's mismatches on the
Reports page and opens them."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot
from ledger.models import IssuerReconciliation, ReconciliationMismatch

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


def test_finance_opens_a_nights_mismatches(transactional_db: None, page: Page) -> None:
    finance = User.objects.create_user(username="fin", password=PASSWORD)
    finance.groups.add(Group.objects.get(name="Finance"))
    run = IssuerReconciliation.objects.create(
        issuer="stripe",
        day=date(2026, 11, 30),
        ran_at=timezone.now(),
        authorizations=12,
        transactions=9,
        cards=4,
        mismatches=[
            {
                "kind": ReconciliationMismatch.TRANSACTION_MISSING_HERE,
                "object_id": "ipi_lost",
                "card_id": None,
                "detail": "capture of 7.00 USD at the issuer; not in our ledger",
            }
        ],
    )
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("fin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Reports", exact=True).click()
    listing = page.get_by_test_id("reconciliation-list")
    expect(listing).to_contain_text("Stripe")
    screenshot(page, "reports-reconciliation")
    listing.get_by_role("link", name="2026-11-30").click()
    expect(page).to_have_url(re.compile(rf"/reconciliation/{run.pk}/$"))
    mismatches = page.get_by_test_id("mismatches")
    expect(mismatches).to_contain_text("Transaction at the issuer only")
    expect(mismatches).to_contain_text("ipi_lost")
    screenshot(page, "reconciliation-detail")
