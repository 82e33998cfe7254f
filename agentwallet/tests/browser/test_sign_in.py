"""Signing in and out of the portal in a real browser."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from agentwallet.tests.browser.screenshots import screenshot

pytestmark = pytest.mark.browser

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def alice(django_user_model: Any, transactional_db: None) -> Any:
    return django_user_model.objects.create_superuser(
        username="alice", email="alice@example.com", password=PASSWORD
    )


def sign_in(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_the_dashboard_sends_a_stranger_to_the_login_page(page: Page, live_server: Any) -> None:
    page.goto("/")

    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    screenshot(page, "login")


def test_signing_in_lands_on_the_dashboard(page: Page, live_server: Any, alice: Any) -> None:
    page.goto("/")

    sign_in(page, "alice", PASSWORD)

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    screenshot(page, "dashboard")


def test_signing_out_returns_to_the_login_page(page: Page, live_server: Any, alice: Any) -> None:
    page.goto("/")
    sign_in(page, "alice", PASSWORD)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/accounts/login/"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_a_wrong_password_shows_an_error_and_stays_on_the_login_page(
    page: Page, live_server: Any, alice: Any
) -> None:
    page.goto("/")

    sign_in(page, "alice", "not-the-password")

    expect(page).to_have_url(re.compile(rf"^{re.escape(live_server.url)}/accounts/login/"))
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    screenshot(page, "login-wrong-password")
