"""Sprint reports in a real browser, on the demo's data (`manage.py seed_demo` builds the
current sprint's so far and the last one's), as its Finance user."""

from __future__ import annotations

import csv
import io
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot
from ledger.models import SprintReport

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def demo(transactional_db: None, django_db_serialized_rollback: None) -> None:
    call_command("seed_demo", admin_password=PASSWORD, stdout=StringIO())


def test_finance_opens_a_sprint_report_and_downloads_its_csv(demo: None, page: Page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("finance")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Reports", exact=True).click()
    report = SprintReport.objects.order_by("-first_day").first()
    listing = page.get_by_test_id("report-list")
    expect(listing).to_be_visible()
    screenshot(page, "reports")
    listing.get_by_role("link").first.click()
    spent = report.figures["currencies"]["USD"]["spent"]["amount"]
    expect(page.get_by_test_id("spent-USD")).to_contain_text(spent)
    expect(page.get_by_test_id("concentration-USD")).to_contain_text("%")
    screenshot(page, "report-detail")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download_info.value.path()).read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows
    assert {"cap_currency", "trace_id", "vendor", "spent"} == set(rows[0])
