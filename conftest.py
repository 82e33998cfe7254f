"""Shared fixtures: three actors, as in healthchecks' Alice/Bob/Charlie.

- `alice`: an agent with its key (the owner of the objects under test)
- `bob`: another agent with its key (must only ever see 404s on alice's objects)
- `staff`: a staff key
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone
from eth_account import Account
from eth_utils import keccak
from rest_framework.test import APIClient

from policies.models import Policy
from wallets.actors import Actor
from wallets.services import ProvisionedAgent, agent_provision, api_key_create
from wallets.tests.x402_processes import Network, running_facilitator, running_server


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
        name: str = "agent", email: str = "owner@example.com", verified: bool = True, **kwargs: Any
    ) -> ProvisionedAgent:
        """An agent of `email`'s principal; `verified`: as if they had followed the link
        mailed to them (else the policy's unverified charge limit holds its cards)."""
        kwargs.setdefault("policy", starter_policy)
        provisioned = agent_provision(
            name=name, principal_email=email, actor=Actor.system("test"), **kwargs
        )
        if verified:
            principal = provisioned.agent.principal
            if principal.email_verified_at is None:
                principal.email_verified_at = timezone.now()
                principal.save(update_fields=["email_verified_at"])
        return provisioned

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """DESELECT_POSTGRES_ONLY=1 (CI's extra pass on SQLite) leaves out the tests that
    need PostgreSQL instead of skipping them: that pass, too, may skip nothing."""
    import os

    from django.conf import settings

    if not os.environ.get("DESELECT_POSTGRES_ONLY"):
        return
    if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
        return
    kept = [item for item in items if "requires_postgres" not in getattr(item, "fixturenames", ())]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI nothing may be skipped: a skip there means a service was missing."""
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI_REQUIRE_SERVICES") and skipped:
        reporter.write_line(f"{skipped} test(s) skipped, but CI runs everything.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def requires_postgres(settings: Any) -> None:
    """Concurrency and locking tests run on PostgreSQL only."""
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


class SignedNetwork:
    """Posts to the network endpoints as a processor would: signed with HMAC-SHA256."""

    def __init__(self, client: APIClient, secret: str) -> None:
        self.client = client
        self.secret = secret

    def signature(
        self, body: bytes, timestamp: int | None = None, secret: str | None = None
    ) -> str:
        import hashlib
        import hmac
        import time

        t = int(time.time()) if timestamp is None else timestamp
        mac = hmac.new(
            (secret or self.secret).encode(), f"{t}.".encode() + body, hashlib.sha256
        ).hexdigest()
        return f"t={t},v1={mac}"

    def post(self, path: str, payload: Any, **kwargs: Any) -> Any:
        import json

        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        header = kwargs.pop("signature", None) or self.signature(body)
        return self.client.post(
            path,
            data=body,
            content_type="application/json",
            HTTP_AGENTWALLET_SIGNATURE=header,
            **kwargs,
        )

    def authorize(
        self,
        card,
        amount: str = "10.00",
        currency: str = "USD",
        *,
        network_id: str | None = None,
        mcc: str | None = None,
        **extra: Any,
    ) -> Any:
        import uuid

        payload = {
            "id": network_id or f"auth_{uuid.uuid4().hex[:16]}",
            "card_id": str(card.pk if hasattr(card, "pk") else card),
            "amount": {"amount": amount, "currency": currency},
            "merchant": {
                "name": extra.pop("merchant_name", None) or merchant_of(card)["merchant_name"],
                "mcc": mcc or (card.allowed_mccs[0] if hasattr(card, "allowed_mccs") else "5734"),
                "network_id": extra.pop("merchant_network_id", None)
                or merchant_of(card)["merchant_network_id"],
                "country": "US",
            },
            **extra,
        }
        return self.post("/api/network/authorizations", payload)

    def capture(self, network_id: str, amount: str, currency: str = "USD", **extra: Any) -> Any:
        import uuid

        extra.setdefault("id", f"cap_{uuid.uuid4().hex[:16]}")
        return self.post(
            f"/api/network/authorizations/{network_id}/capture",
            {"amount": {"amount": amount, "currency": currency}, **extra},
        )

    def reverse(
        self, network_id: str, amount: str | None = None, currency: str = "USD", **extra: Any
    ) -> Any:
        import uuid

        payload = {"id": f"rev_{uuid.uuid4().hex[:16]}", **extra}
        if amount is not None:
            payload["amount"] = {"amount": amount, "currency": currency}
        return self.post(f"/api/network/authorizations/{network_id}/reverse", payload)


@pytest.fixture
def network(db: None, settings: Any) -> SignedNetwork:
    return SignedNetwork(APIClient(), settings.AGENTWALLET_NETWORK_SECRET)


def merchant_of(card: Any) -> dict[str, str]:
    """The merchant a card's vendor charges as on the network: its first statement
    descriptor and verified merchant id (else one made up for it), so that charges pass
    the merchant lock unless a test means them not to."""
    vendor = getattr(card, "vendor", None)
    if vendor is None:
        return {"merchant_name": "ACME", "merchant_network_id": ""}
    return {
        "merchant_name": (vendor.descriptors or [vendor.name])[0],
        "merchant_network_id": (vendor.network_ids or [f"mid-{vendor.slug}"])[0],
    }


def card_for(provisioned: ProvisionedAgent, vendor_slug: str):
    return next(new.card for new in provisioned.cards if new.card.vendor.slug == vendor_slug)


@pytest.fixture
def fx_rates(db: None):
    from ledger.fx import fx_rates_load

    return fx_rates_load()


@pytest.fixture(autouse=True)
def _ledger_maintenance_between_tests(request: pytest.FixtureRequest) -> Any:
    """Transactional tests are emptied with TRUNCATE/DELETE, which the ledger's
    immutability trigger refuses; maintenance mode lets only that flush through.

    Every database test starts with maintenance off, so the trigger is live in it.
    """
    names = request.fixturenames
    transactional = "transactional_db" in names or "live_server" in names
    if not transactional and "db" not in names:
        yield
        return
    from django.db import connection

    from ledger.immutability import set_ledger_maintenance

    request.getfixturevalue("transactional_db" if transactional else "db")
    set_ledger_maintenance(connection, enabled=False)
    yield
    if transactional:
        set_ledger_maintenance(connection, enabled=True)  # for the flush that follows


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    """Exchange rates are cached per process; a rolled-back test must not leave its own."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


# --- The offline x402 network (wallets/tests/x402_network.py), started once a session:
# the official facilitator on an in-memory chain, and the official paywall before it.


@pytest.fixture(scope="session")
def x402_facilitator() -> Iterator[str]:
    """Base URL of the official x402 facilitator on a FakeChain (test-only /chain/*)."""
    with running_facilitator() as base_url:
        yield base_url


@pytest.fixture(scope="session")
def x402_pay_to() -> str:
    """The paywalled API's payee: a fixed, checksummed address (no key is ever used)."""
    return Account.from_key(keccak(text="agentwallet x402 test payee")).address


@pytest.fixture(scope="session")
def x402_server(x402_facilitator: str, x402_pay_to: str) -> Iterator[str]:
    """Base URL of the official paywalled API: GET /cheap ($0.01), GET /pricey ($6)."""
    with running_server(x402_facilitator, x402_pay_to) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def x402_network(x402_facilitator: str, x402_server: str) -> Network:
    return Network(facilitator_url=x402_facilitator, server_url=x402_server)


@pytest.fixture
def fake_stripe(settings: Any) -> Iterator[Any]:
    """Stripe Issuing as the issuer, its API a local server (cards.tests.fake_stripe)."""
    from cards.tests.fake_stripe import API_KEY, WEBHOOK_SECRET, start_fake_stripe

    fake = start_fake_stripe()
    settings.AGENTWALLET_CARD_ISSUER = "stripe"
    settings.STRIPE_API_KEY = API_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = fake.base_url
    settings.STRIPE_CARDHOLDER_ADDRESS = {
        "line1": "1 Market St",
        "city": "San Francisco",
        "state": "CA",
        "postal_code": "94105",
        "country": "US",
    }
    yield fake
    fake.stop()
