"""Browser tests: Playwright for Python driving Debian's chromium against `live_server`.

Never `playwright install` (it downloads a browser): the tests launch /usr/bin/chromium
(`apt-get install -y chromium`). Without it they skip, saying so; CI forbids skips
(CI_REQUIRE_SERVICES), so there a missing chromium fails the run.

They run on PostgreSQL and on SQLite alike: nothing here needs PostgreSQL, so they carry
the `browser` marker, never `postgres`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="package")
def browser(django_db_setup: None, django_db_blocker: Any) -> Iterator[Browser]:
    """One chromium for all the browser tests of the session.

    Playwright's sync API keeps an asyncio event loop running on this thread while it is
    up, so Django takes the ORM calls made here (the test database, the users a test
    creates) for calls from async code and refuses them (SynchronousOnlyOperation). They
    are plain synchronous calls: the check is off while the browser is up, and only then.
    Package scope ends both when the browser tests are done, so the rest of the suite
    runs with no loop and with the check on.
    """
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)"
        )
    # While the loop runs, Django's connections are looked up in another context: they
    # are other wrapper objects, without the copy of the migrations' rows that the test
    # database was made with (what serialized rollback puts back after a flush).
    serialized = {
        alias: getattr(connections[alias], "_test_serialized_contents", None)
        for alias in connections
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            for alias, contents in serialized.items():
                if contents is not None:
                    connections[alias]._test_serialized_contents = contents
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
            # Those other wrappers opened connections of their own: close them here, or
            # they would still be open when the test database is dropped.
            connections.close_all()


@pytest.fixture
def page(browser: Browser, live_server: Any, django_db_serialized_rollback: None) -> Iterator[Page]:
    """A fresh context (cookies, storage) per test, pointed at the live server.

    `live_server` empties the database after each test; serialized rollback puts back
    the rows the migrations seed (policies, vendors), which later tests rely on.
    """
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(10_000)
    new_page = context.new_page()
    yield new_page
    context.close()
