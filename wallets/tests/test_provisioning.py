from __future__ import annotations

import pytest

from cards.issuers import get_issuer
from cards.issuers.sandbox import SandboxIssuer
from cards.models import Card, CardEvent, CardEventKind
from wallets.models import Agent, ApiKey, ApiKeyKind, Principal

STARTER_VENDORS = {"openai", "anthropic", "aws", "vercel", "github", "snowflake"}


def test_provisioning_creates_agent_key_and_one_card_per_default_vendor(provision):
    provisioned = provision(
        name="claude", email="Lead@Example.com", principal_slack_user_id="U0LEAD0001"
    )

    agent = Agent.objects.get(pk=provisioned.agent.pk)
    assert agent.principal.email == "lead@example.com"
    assert agent.principal.slack_user_id == "U0LEAD0001"
    assert {card.vendor.slug for card in agent.cards.all()} == STARTER_VENDORS
    assert all(card.allowed_mccs == card.vendor.mccs for card in agent.cards.all())
    key = ApiKey.objects.get(agent=agent)
    assert key.kind == ApiKeyKind.AGENT
    assert ApiKey.objects.get_from_key(provisioned.raw_key) == key
    assert CardEvent.objects.filter(card__agent=agent, kind=CardEventKind.ISSUED).count() == 6


def test_provisioning_with_explicit_vendors_issues_only_those(provision):
    from policies.models import Vendor

    vendors = list(Vendor.objects.filter(slug__in=["hetzner", "openai"]))
    provisioned = provision(vendors=vendors)
    assert {c.card.vendor.slug for c in provisioned.cards} == {"hetzner", "openai"}


def test_provisioning_is_all_or_nothing_when_a_card_fails(provision, monkeypatch):
    issuer = get_issuer()
    real_issue = SandboxIssuer.issue_card
    closed: list[str] = []
    calls = {"n": 0}

    def flaky_issue(self, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("issuer unavailable")
        return real_issue(self, **kwargs)

    monkeypatch.setattr(SandboxIssuer, "issue_card", flaky_issue)
    monkeypatch.setattr(
        type(issuer), "close_card", lambda self, *, issuer_card_id: closed.append(issuer_card_id)
    )

    with pytest.raises(RuntimeError, match="issuer unavailable"):
        provision(name="doomed", email="doomed@example.com")

    assert not Agent.objects.filter(name="doomed").exists()
    assert not Principal.objects.filter(email="doomed@example.com").exists()
    assert not ApiKey.objects.filter(name="doomed key").exists()
    assert Card.objects.count() == 0
    assert CardEvent.objects.count() == 0
    # The three cards the issuer did create are closed there again.
    assert len(closed) == 3


def test_provisioning_through_the_api_shows_number_and_key_once(staff_client):
    response = staff_client.post(
        "/api/agents",
        {
            "name": "ci-bot",
            "principal_email": "ci@example.com",
            "policy": "starter",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["agent"]["name"] == "ci-bot"
    assert body["agent"]["policy"] == "starter"
    assert len(body["cards"]) == 6
    first = body["cards"][0]
    assert len(first["number"]) == 16
    assert first["card"]["last4"] == first["number"][-4:]
    assert len(first["cvc"]) == 3
    key = body["api_key"]
    assert ApiKey.objects.get_from_key(key).agent_id is not None
    agent_id = body["agent"]["id"]
    again = staff_client.get(f"/api/agents/{agent_id}/cards")
    assert first["number"] not in again.content.decode()
    assert key not in again.content.decode()


def test_agent_key_cannot_provision(alice_client):
    response = alice_client.post(
        "/api/agents",
        {
            "name": "sneaky",
            "principal_email": "x@example.com",
            "policy": "starter",
        },
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Agent.objects.filter(name="sneaky").exists()


def test_duplicate_agent_name_for_same_principal_is_refused(provision, staff_client):
    provision(name="twin", email="same@example.com")
    response = staff_client.post(
        "/api/agents",
        {
            "name": "twin",
            "principal_email": "same@example.com",
            "policy": "starter",
        },
        format="json",
    )
    assert response.status_code == 400
    assert Agent.objects.filter(name="twin").count() == 1


def test_provisioning_takes_a_fixed_number_of_queries(
    provision, starter_policy, django_assert_max_num_queries
):
    provision(name="warm", email="same@example.com")
    # Six cards or sixty, the cards and their events go in one INSERT each; one more
    # for the USDC wallet (the starter policy allows x402).
    with django_assert_max_num_queries(13):
        provision(name="measured", email="same@example.com")
