"""Shared fixtures: three actors, as in healthchecks' Alice/Bob/Charlie.

- `alice`: an agent with its key (the owner of the objects under test)
- `bob`: another agent with its key (must only ever see 404s on alice's objects)
- `staff`: a staff key
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from policies.models import Policy
from wallets.actors import Actor
from wallets.services import ProvisionedAgent, agent_provision, api_key_create


@dataclass
class KeyedClient:
    client: APIClient
    raw_key: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def keyed_client(raw_key: str) -> KeyedClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return KeyedClient(client=client, raw_key=raw_key)


@pytest.fixture
def starter_policy(db: None) -> Policy:
    return Policy.objects.get(slug="starter")


@pytest.fixture
def provision(starter_policy: Policy):
    def make(
        name: str = "agent", email: str = "owner@example.com", **kwargs: Any
    ) -> ProvisionedAgent:
        kwargs.setdefault("policy", starter_policy)
        return agent_provision(
            name=name, principal_email=email, actor=Actor.system("test"), **kwargs
        )

    return make


@pytest.fixture
def alice(provision) -> ProvisionedAgent:
    return provision(name="alice-agent", email="alice@example.com")


@pytest.fixture
def bob(provision) -> ProvisionedAgent:
    return provision(name="bob-agent", email="bob@example.com")


@pytest.fixture
def alice_client(alice: ProvisionedAgent) -> KeyedClient:
    return keyed_client(alice.raw_key)


@pytest.fixture
def bob_client(bob: ProvisionedAgent) -> KeyedClient:
    return keyed_client(bob.raw_key)


@pytest.fixture
def staff_client(db: None) -> KeyedClient:
    _, raw_key = api_key_create(name="staff", agent=None, created_by=Actor.system("test"))
    return keyed_client(raw_key)


@pytest.fixture
def anon_client() -> APIClient:
    return APIClient()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may be skipped: a skip there means a service was missing."""
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI_REQUIRE_SERVICES") and skipped:
        reporter.write_line(f"{skipped} test(s) skipped, but CI runs everything.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def requires_postgres(db: None) -> None:
    """Concurrency and locking tests run on PostgreSQL only."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
