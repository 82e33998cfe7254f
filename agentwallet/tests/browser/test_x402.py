"""x402 in a real browser, on the demo's data (`manage.py seed_demo`), as finance: the
agent's USDC wallet and its payments on its page, the ledger filtered to the usdc rail,
and an x402 payment in its trace."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot
from wallets.models import UsdcWallet, X402Payment

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def demo(transactional_db: None, django_db_serialized_rollback: None) -> None:
    call_command("seed_demo", admin_password=PASSWORD, stdout=StringIO())


def test_finance_sees_the_wallet_its_payments_and_their_traces(demo: None, page: Page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("finance")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    wallet = UsdcWallet.objects.get(agent__name="claude-code-main")

    page.goto(f"/agents/{wallet.agent_id}/")
    expect(page.get_by_test_id("wallet-address")).to_have_text(wallet.address)
    payments = page.get_by_test_id("x402-payments").locator("tbody tr")
    expect(payments).to_have_count(X402Payment.objects.filter(agent=wallet.agent).count())
    expect(payments.first).to_contain_text("settled")
    expect(payments.first).to_contain_text("0.0015")  # exact USDC, counted as a cent
    table = page.get_by_test_id("x402-payments")
    expect(table).to_contain_text("x402_per_call_cap_exceeded")
    expect(table).to_contain_text("released")
    screenshot(page, "agent-usdc-wallet")

    page.goto("/ledger/")
    page.get_by_label("Rail").select_option("usdc")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"rail=usdc"))
    rows = page.locator("table tbody tr")
    expect(rows.first).to_contain_text("USDC (x402)")
    for kind in rows.locator("td:nth-child(2)").all_inner_texts():
        assert kind in ("x402_payment", "release")
    screenshot(page, "ledger-usdc")

    page.goto("/traces/PR-4881/")
    expect(page.get_by_role("heading", name=re.compile("PR-4881"))).to_be_visible()
    expect(page.locator("main")).to_contain_text("USDC (x402)")
    screenshot(page, "trace-with-x402")
