from __future__ import annotations

import pytest
from django.utils import timezone

from cards.models import Card, CardEvent, CardEventKind, CardStatus
from cards.services import card_close, card_freeze, card_unfreeze
from wallets.actors import Actor


def _events(card, kind):
    return list(CardEvent.objects.filter(card=card, kind=kind))


def test_freeze_through_the_api_is_recorded_with_who_when_and_why(alice, staff_client):
    card = alice.cards[0].card
    started = timezone.now()

    response = staff_client.post(
        f"/api/agents/{alice.agent.pk}/cards/{card.pk}/freeze",
        {"reason": "prompt injection suspected"},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["status"] == "frozen"
    assert Card.objects.get(pk=card.pk).status == CardStatus.FROZEN
    [event] = _events(card, CardEventKind.FROZEN)
    assert event.reason == "prompt injection suspected"
    assert event.actor.startswith("staff-key:")
    assert event.created_at >= started


def test_agent_may_freeze_its_own_card_but_not_unfreeze_it(alice, alice_client):
    card = alice.cards[0].card
    base = f"/api/agents/{alice.agent.pk}/cards/{card.pk}"

    assert (
        alice_client.post(f"{base}/freeze", {"reason": "done with it"}, format="json").status_code
        == 200
    )
    response = alice_client.post(f"{base}/unfreeze", {}, format="json")

    assert response.status_code == 403
    assert Card.objects.get(pk=card.pk).status == CardStatus.FROZEN
    assert _events(card, CardEventKind.UNFROZEN) == []
    [event] = _events(card, CardEventKind.FROZEN)
    assert event.actor == f"agent-key:{alice.api_key.prefix}"


def test_staff_unfreeze_is_recorded(alice, staff_client):
    card = alice.cards[0].card
    card_freeze(card=card, actor=Actor.system("test"), reason="spike")
    response = staff_client.post(
        f"/api/agents/{alice.agent.pk}/cards/{card.pk}/unfreeze",
        {"reason": "false alarm"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["status"] == "active"
    [event] = _events(card, CardEventKind.UNFROZEN)
    assert event.reason == "false alarm"


def test_freezing_twice_records_one_event(alice):
    card = alice.cards[0].card
    card_freeze(card=card, actor=Actor.system("test"), reason="one")
    card_freeze(card=card, actor=Actor.system("test"), reason="two")
    assert len(_events(card, CardEventKind.FROZEN)) == 1


def test_a_closed_card_cannot_be_frozen_or_unfrozen(alice, staff_client):
    card = alice.cards[0].card
    card_close(card=card, actor=Actor.system("test"), reason="rotated")
    base = f"/api/agents/{alice.agent.pk}/cards/{card.pk}"
    assert staff_client.post(f"{base}/freeze", {"reason": "x"}, format="json").status_code == 409
    assert staff_client.post(f"{base}/unfreeze", {}, format="json").status_code == 409
    with pytest.raises(Exception, match="closed"):
        card_unfreeze(card=card, actor=Actor.system("test"))


def test_agent_freeze_freezes_every_card_at_once(alice, bob, alice_client):
    response = alice_client.post(
        f"/api/agents/{alice.agent.pk}/freeze", {"reason": "runaway loop"}, format="json"
    )

    assert response.status_code == 200
    assert len(response.json()["changed"]) == 6
    assert set(Card.objects.filter(agent=alice.agent).values_list("status", flat=True)) == {
        CardStatus.FROZEN
    }
    assert (
        CardEvent.objects.filter(
            card__agent=alice.agent, kind=CardEventKind.FROZEN, reason="runaway loop"
        ).count()
        == 6
    )
    # Bob's cards are untouched.
    assert set(Card.objects.filter(agent=bob.agent).values_list("status", flat=True)) == {
        CardStatus.ACTIVE
    }


def test_agent_unfreeze_restores_frozen_cards_only(alice, staff_client):
    closed = alice.cards[0].card
    card_close(card=closed, actor=Actor.system("test"))
    staff_client.post(f"/api/agents/{alice.agent.pk}/freeze", {"reason": "x"}, format="json")

    response = staff_client.post(f"/api/agents/{alice.agent.pk}/unfreeze", {}, format="json")

    assert response.status_code == 200
    assert len(response.json()["changed"]) == 5
    assert Card.objects.get(pk=closed.pk).status == CardStatus.CLOSED


def test_freeze_is_visible_to_the_very_next_read(alice, staff_client):
    """The decision engine reads the card row; no cache stands between."""
    card = alice.cards[0].card
    staff_client.post(
        f"/api/agents/{alice.agent.pk}/cards/{card.pk}/freeze", {"reason": "now"}, format="json"
    )
    assert Card.objects.get(pk=card.pk).status == CardStatus.FROZEN


def test_the_kill_switch_takes_a_fixed_number_of_queries(
    alice, staff_client, django_assert_max_num_queries
):
    # Key lookup and last-used, agent, savepoint pair, the locked cards with their vendors,
    # then per card an UPDATE and an event, the USDC wallet's UPDATE, and one audit row
    # for the whole switch: no per-card vendor lookups for the response.
    with django_assert_max_num_queries(6 + 2 * 6 + 1 + 1):
        response = staff_client.post(
            f"/api/agents/{alice.agent.pk}/freeze", {"reason": "x"}, format="json"
        )
    assert response.status_code == 200


def test_the_kill_switch_freezes_the_usdc_wallet_too(alice, staff_client):
    from wallets.models import UsdcWallet

    staff_client.post(f"/api/agents/{alice.agent.pk}/freeze", {"reason": "x"}, format="json")
    assert UsdcWallet.objects.get(agent=alice.agent).status == "frozen"
    staff_client.post(f"/api/agents/{alice.agent.pk}/unfreeze", {}, format="json")
    assert UsdcWallet.objects.get(agent=alice.agent).status == "active"
