"""Another agent's objects answer 404, never 403, on every agent route (table-driven)."""

from __future__ import annotations

import uuid

import pytest

from cards.models import Card, CardEvent, CardStatus

# (method, path template, body): every route that takes an agent id.
AGENT_ROUTES = [
    ("get", "/api/agents/{agent}", None),
    ("post", "/api/agents/{agent}/freeze", {"reason": "probe"}),
    ("post", "/api/agents/{agent}/unfreeze", {}),
    ("get", "/api/agents/{agent}/cards", None),
    ("post", "/api/agents/{agent}/cards", {"vendor": "hetzner", "trace_id": "PR-1"}),
    ("get", "/api/agents/{agent}/cards/{card}", None),
    ("post", "/api/agents/{agent}/cards/{card}/freeze", {"reason": "probe"}),
    ("post", "/api/agents/{agent}/cards/{card}/unfreeze", {}),
    ("get", "/api/agents/{agent}/budget", None),
    ("put", "/api/agents/{agent}/trace", {"trace_id": "PR-9"}),
    ("delete", "/api/agents/{agent}/trace", None),
    (
        "post",
        "/api/agents/{agent}/approvals",
        {"scope": "daily", "reason": "probe", "amount": {"amount": "5.00", "currency": "USD"}},
    ),
]


def _call(client, method, template, body, agent_id, card_id):
    path = template.format(agent=agent_id, card=card_id)
    return (
        getattr(client, method)(path, body, format="json")
        if body is not None
        else getattr(client, method)(path)
    )


@pytest.mark.parametrize(("method", "template", "body"), AGENT_ROUTES)
def test_another_agents_objects_answer_404(alice, bob_client, method, template, body):
    card = alice.cards[0].card
    before = (Card.objects.filter(status=CardStatus.ACTIVE).count(), CardEvent.objects.count())

    response = _call(bob_client, method, template, body, alice.agent.pk, card.pk)

    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    after = (Card.objects.filter(status=CardStatus.ACTIVE).count(), CardEvent.objects.count())
    assert after == before


@pytest.mark.parametrize(("method", "template", "body"), AGENT_ROUTES)
def test_missing_ids_answer_the_same_404(alice_client, alice, method, template, body):
    """A made-up id and a foreign id are indistinguishable."""
    response = _call(alice_client, method, template, body, uuid.uuid4(), uuid.uuid4())
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "not_found", "message": "Not found.", "fields": {}}
    }


@pytest.mark.parametrize(("method", "template", "body"), AGENT_ROUTES)
def test_staff_reaches_every_agent_route(alice, staff_client, method, template, body):
    response = _call(staff_client, method, template, body, alice.agent.pk, alice.cards[0].card.pk)
    assert response.status_code in (200, 201), response.content


@pytest.mark.parametrize(("method", "template", "body"), AGENT_ROUTES)
def test_owner_gets_no_404_on_its_own_routes(alice, alice_client, method, template, body):
    response = _call(alice_client, method, template, body, alice.agent.pk, alice.cards[0].card.pk)
    # Unfreezing is staff-only: the owner sees its object but may not lift a freeze.
    expected = {403} if template.endswith("unfreeze") else {200, 201}
    assert response.status_code in expected, response.content


def test_agent_list_shows_only_the_agent_itself(alice, bob, alice_client, staff_client):
    mine = alice_client.get("/api/agents").json()["results"]
    assert [agent["id"] for agent in mine] == [str(alice.agent.pk)]
    everyone = {agent["id"] for agent in staff_client.get("/api/agents").json()["results"]}
    assert {str(alice.agent.pk), str(bob.agent.pk)} <= everyone


def test_unauthenticated_requests_are_refused(alice, anon_client):
    response = anon_client.get(f"/api/agents/{alice.agent.pk}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_staff_only_routes_refuse_agent_keys(alice_client):
    assert alice_client.get("/api/policies").status_code == 403
    assert alice_client.get("/api/policies/starter").status_code == 403
    assert (
        alice_client.post(
            "/api/vendors", {"slug": "x", "name": "X", "mccs": ["5734"]}, format="json"
        ).status_code
        == 403
    )
