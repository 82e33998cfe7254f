from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from cards.models import Card, CardEventKind


def test_agent_lists_its_cards_with_last_four_only(alice, alice_client):
    response = alice_client.get(f"/api/agents/{alice.agent.pk}/cards")
    assert response.status_code == 200
    cards = response.json()["results"]
    assert len(cards) == 6
    assert {"number", "cvc"}.isdisjoint(cards[0])
    assert all(len(card["last4"]) == 4 for card in cards)


def test_ephemeral_card_is_bound_to_a_trace_and_expires(alice, alice_client):
    before = timezone.now()
    response = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {
            "vendor": "openai",
            "trace_id": "PR-4823",
            "expires_in_seconds": 3600,
            "monthly_cap": {"amount": "15.00", "currency": "USD"},
            "single_use": True,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    card = Card.objects.get(pk=body["card"]["id"])
    assert card.is_ephemeral
    assert card.single_use
    assert card.trace_id == "PR-4823"
    assert (
        before + timedelta(seconds=3590)
        < card.expires_at
        <= timezone.now() + timedelta(seconds=3600)
    )
    assert str(card.monthly_cap.amount) == "15.00"
    assert body["number"].endswith(card.last4)
    assert card.events.get().kind == CardEventKind.ISSUED


def test_extra_standing_card_for_a_new_vendor(alice, alice_client):
    response = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards", {"vendor": "hetzner"}, format="json"
    )
    assert response.status_code == 201
    card = Card.objects.get(pk=response.json()["card"]["id"])
    assert not card.is_ephemeral
    assert card.allowed_mccs == ["4816", "7372", "7399"]


def test_second_standing_card_for_the_same_vendor_is_a_conflict(alice, alice_client):
    response = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards", {"vendor": "openai"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert Card.objects.filter(agent=alice.agent, vendor__slug="openai").count() == 1


def test_card_detail(alice, alice_client):
    card = alice.cards[0].card
    response = alice_client.get(f"/api/agents/{alice.agent.pk}/cards/{card.pk}")
    assert response.status_code == 200
    assert response.json()["last4"] == card.last4
    assert response.json()["vendor"] == card.vendor.slug


def test_card_list_query_count_does_not_grow_with_cards(
    alice, alice_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(5):
        alice_client.get(f"/api/agents/{alice.agent.pk}/cards")
