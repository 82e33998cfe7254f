"""The portal's agent pages: the list with its filters, one agent with its budget, the
kill switch and keys; permissions checked on the server, another team's agent a 404."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agentwallet.tests.test_portal import signed_in, user_with
from cards.models import CardEvent
from conftest import card_for
from wallets.models import ApiKey, TeamLead


@pytest.fixture
def spent(alice, bob, network):
    assert network.authorize(card_for(alice, "openai"), "12.50").json()["decision"] == "approved"
    return alice, bob


def test_the_list_shows_agents_with_their_spend_and_filters(spent):
    client = signed_in(user_with("Viewer"))
    page = client.get("/agents/").content.decode()
    assert "alice-agent" in page
    assert "bob-agent" in page
    assert "12.50 USD" in page
    found = client.get("/agents/?q=ALICE").content.decode()
    assert "alice-agent" in found
    assert "bob-agent" not in found
    assert "No agent matches" in client.get("/agents/?status=suspended").content.decode()
    fragment = client.get("/agents/?q=bob", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment
    assert "bob-agent" in fragment


def test_the_list_is_paginated_with_flat_queries(provision):
    client = signed_in(user_with("Viewer"))
    provision(name="p0", email="p0@example.com")

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    few = queries("/agents/")
    for n in range(1, 30):
        provision(name=f"p{n:02d}", email=f"p{n}@example.com")
    assert queries("/agents/") == few
    assert "Page 1 of 2" in client.get("/agents/").content.decode()
    assert "Page 2 of 2" in client.get("/agents/?page=2").content.decode()


def test_one_agent_shows_the_budget_the_api_gives(spent, staff_client):
    alice, _ = spent
    page = signed_in(user_with("Viewer")).get(f"/agents/{alice.agent.pk}/").content.decode()
    budget = staff_client.get(f"/api/agents/{alice.agent.pk}/budget").json()
    assert budget["rolling_24h"]["spent"]["amount"] == "12.50"
    assert 'data-testid="budget-day">12.50' in page
    assert 'data-testid="budget-month">12.50' in page
    assert "OpenAI" in page
    assert ">Freeze</button>" not in page  # a viewer cannot


def test_a_lead_sees_their_team_only(spent):
    alice, bob = spent
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    assert "bob-agent" not in client.get("/agents/").content.decode()
    assert client.get(f"/agents/{bob.agent.pk}/").status_code == 404
    card = card_for(bob, "openai")
    forged = client.post(f"/agents/{bob.agent.pk}/freeze-card", {"card": card.pk, "reason": "x"})
    assert forged.status_code == 404
    card.refresh_from_db()
    assert card.status == "active"
    assert client.get("/agents/not-a-uuid/").status_code == 404


def test_freezing_a_card_asks_why_and_the_next_charge_is_declined(spent, network):
    alice, _ = spent
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    card = card_for(alice, "openai")
    path = f"/agents/{alice.agent.pk}/freeze-card"
    no_reason = client.post(path, {"card": card.pk, "reason": " "}, follow=True)
    assert "Nothing changed." in no_reason.content.decode()
    card.refresh_from_db()
    assert card.status == "active"
    client.post(path, {"card": card.pk, "reason": "prompt injection suspected"})
    card.refresh_from_db()
    assert card.status == "frozen"
    event = CardEvent.objects.get(card=card, kind="frozen")
    assert (event.actor, event.reason) == ("user:lena", "prompt injection suspected")
    assert network.authorize(card, "1.00").json()["reason"] == "card_frozen"
    client.post(f"/agents/{alice.agent.pk}/unfreeze-card", {"card": card.pk})
    card.refresh_from_db()
    assert card.status == "active"


def test_the_kill_switch_freezes_every_card(spent):
    alice, _ = spent
    client = signed_in(user_with(None, "root"))
    root = client  # a superuser below
    from django.contrib.auth.models import User

    User.objects.filter(username="root").update(is_superuser=True)
    root.post(f"/agents/{alice.agent.pk}/freeze-agent", {"reason": "runaway loop"})
    statuses = set(alice.agent.cards.values_list("status", flat=True))
    assert statuses == {"frozen"}


def test_a_viewer_cannot_freeze_or_make_keys(spent):
    alice, _ = spent
    client = signed_in(user_with("Viewer"))
    card = card_for(alice, "openai")
    assert (
        client.post(
            f"/agents/{alice.agent.pk}/freeze-card", {"card": card.pk, "reason": "x"}
        ).status_code
        == 403
    )
    assert client.post(f"/agents/{alice.agent.pk}/create-key", {"name": "k"}).status_code == 403
    card.refresh_from_db()
    assert card.status == "active"


def test_keys_are_shown_once_and_can_be_revoked(spent):
    alice, _ = spent
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    created = client.post(f"/agents/{alice.agent.pk}/create-key", {"name": "ci-runner"})
    assert "no-store" in created["Cache-Control"]
    page = created.content.decode()
    assert 'data-testid="new-key">' in page
    again = client.get(f"/agents/{alice.agent.pk}/").content.decode()
    assert 'data-testid="new-key"' not in again  # shown once
    key = ApiKey.objects.get(agent=alice.agent, name="ci-runner")
    client.post(f"/agents/{alice.agent.pk}/revoke-key", {"key": key.pk})
    key.refresh_from_db()
    assert key.revoked


def test_provisioning_in_the_portal_shows_the_key_and_numbers_once(db):
    from cards.models import Card
    from wallets.models import Agent

    lead = user_with("Engineering lead", "lena")
    client = signed_in(lead)
    assert client.get("/agents/new/").status_code == 200
    bad = client.post("/agents/new/", {"name": "", "principal_email": "nope", "policy": "starter"})
    assert bad.status_code == 400
    assert not Agent.objects.exists()
    done = client.post(
        "/agents/new/",
        {"name": "claude-pr-bot", "principal_email": "lena@acme.dev", "policy": "starter"},
    )
    assert done.status_code == 200
    assert "no-store" in done["Cache-Control"]
    agent = Agent.objects.get(name="claude-pr-bot")
    page = done.content.decode()
    assert 'data-testid="new-agent-key">' in page
    card = Card.objects.filter(agent=agent).first()
    assert card.last4 in page
    assert card.number_ciphertext not in page
    # Shown once: the agent's page has only the last four digits.
    later = client.get(f"/agents/{agent.pk}/").content.decode()
    assert 'data-testid="new-agent-key"' not in later


def test_a_viewer_cannot_provision(db):
    client = signed_in(user_with("Viewer"))
    assert client.get("/agents/new/").status_code == 403
    assert (
        client.post(
            "/agents/new/", {"name": "x", "principal_email": "x@acme.dev", "policy": "starter"}
        ).status_code
        == 403
    )
