"""Capture, reversal, refund and expiry, as real processors behave."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cards.services import card_freeze
from conftest import card_for
from ledger.models import Authorization, LedgerEntry
from ledger.selectors import agent_spend_now
from ledger.services import holds_expire
from wallets.actors import Actor


def approve(network, card, amount, network_id):
    body = network.authorize(card, amount, network_id=network_id).json()
    assert body["decision"] == "approved", body
    return body


def day_spent(provisioned):
    return agent_spend_now(agent=provisioned.agent, now=timezone.now()).day_cents


def auth(network_id):
    return Authorization.objects.get(network_id=network_id)


def entries(network_id):
    return list(
        LedgerEntry.objects.filter(authorization__network_id=network_id)
        .order_by("id")
        .values_list("kind", "cap_cents", "flag")
    )


def test_full_capture_moves_the_hold_to_a_capture(alice, network):
    approve(network, card_for(alice, "openai"), "40.00", "a1")
    response = network.capture("a1", "40.00", id="t1")
    assert response.status_code == 201
    assert response.json()["hold_state"] == "closed"
    assert entries("a1") == [("hold", 4000, ""), ("capture", 4000, ""), ("release", -4000, "")]
    assert day_spent(alice) == 4000


def test_partial_and_several_captures_against_one_hold(alice, network):
    approve(network, card_for(alice, "openai"), "100.00", "a2")
    network.capture("a2", "30.00", id="t2a")
    assert auth("a2").held_cents == 7000
    assert auth("a2").hold_state == "open"
    network.capture("a2", "50.00", id="t2b")
    assert auth("a2").held_cents == 2000
    assert day_spent(alice) == 10000  # 30 + 50 captured + 20 still held
    network.reverse("a2")
    assert auth("a2").hold_state == "closed"
    assert day_spent(alice) == 8000


def test_capture_above_the_hold_counts_in_full_and_is_flagged(alice, network):
    approve(network, card_for(alice, "openai"), "20.00", "a3")
    network.capture("a3", "23.50", id="t3")  # a tip
    assert ("capture", 2350, "over_capture") in entries("a3")
    assert day_spent(alice) == 2350
    assert auth("a3").hold_state == "closed"


def test_capture_after_the_hold_resolved_is_flagged_late(alice, network):
    approve(network, card_for(alice, "openai"), "20.00", "a4")
    network.reverse("a4")
    network.capture("a4", "20.00", id="t4")
    assert entries("a4")[-1] == ("capture", 2000, "late_capture")
    assert day_spent(alice) == 2000


def test_forced_capture_on_a_decline_is_recorded_counted_and_flagged(alice, network):
    card = card_for(alice, "openai")
    card_freeze(card=card, actor=Actor.system("t"), reason="x")
    assert network.authorize(card, "60.00", network_id="a5").json()["reason"] == "card_frozen"
    response = network.capture("a5", "60.00", id="t5")
    assert response.status_code == 201  # never rejected
    assert entries("a5") == [("capture", 6000, "force_post")]
    assert day_spent(alice) == 6000  # it never creates headroom: it uses it up


def test_capture_for_an_authorization_we_never_saw(alice, network):
    card = card_for(alice, "github")
    response = network.capture("never-seen", "9.99", id="t6", card_id=str(card.pk))
    assert response.status_code == 201
    entry = LedgerEntry.objects.get(network_txn_id="t6")
    assert (entry.kind, entry.flag, entry.cap_cents, entry.card_id) == (
        "capture",
        "force_post",
        999,
        card.pk,
    )


def test_capture_for_an_unknown_authorization_without_card_is_404(network, db):
    response = network.capture("never-seen", "9.99", id="t7")
    assert response.status_code == 404
    assert LedgerEntry.objects.count() == 0


def test_a_retried_capture_is_recorded_once(alice, network):
    approve(network, card_for(alice, "openai"), "10.00", "a8")
    first = network.capture("a8", "10.00", id="t8")
    again = network.capture("a8", "10.00", id="t8")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert len(entries("a8")) == 3


def test_capture_in_another_currency_is_a_conflict(alice, network):
    approve(network, card_for(alice, "openai"), "10.00", "a9")
    response = network.capture("a9", "10.00", "EUR", id="t9")
    assert response.status_code == 409
    assert len(entries("a9")) == 1


def test_partial_reversal_releases_exactly_the_released_amount(alice, network):
    approve(network, card_for(alice, "openai"), "50.00", "a10")
    network.reverse("a10", "12.34", id="r10")
    assert entries("a10")[-1] == ("release", -1234, "")
    assert auth("a10").held_cents == 5000 - 1234
    assert day_spent(alice) == 5000 - 1234
    network.reverse("a10", "37.66", id="r10b")
    assert auth("a10").hold_state == "closed"
    assert day_spent(alice) == 0


def test_a_hold_resolves_at_most_once(alice, network):
    approve(network, card_for(alice, "openai"), "50.00", "a11")
    assert network.reverse("a11").status_code == 201
    again = network.reverse("a11")
    assert again.status_code == 409
    assert [kind for kind, *_ in entries("a11")] == ["hold", "release"]


def test_reversing_a_declined_authorization_is_a_conflict(alice, network):
    card = card_for(alice, "openai")
    card_freeze(card=card, actor=Actor.system("t"), reason="x")
    network.authorize(card, "5.00", network_id="a12")
    assert network.reverse("a12").status_code == 409


def test_refund_after_capture_gives_back_at_most_what_was_captured(alice, network):
    card = card_for(alice, "openai")
    approve(network, card, "30.00", "a13")
    network.capture("a13", "30.00", id="t13")
    refund = network.post(
        "/api/network/refunds",
        {
            "id": "rf13",
            "card_id": str(card.pk),
            "authorization_id": "a13",
            "amount": {"amount": "10.00", "currency": "USD"},
        },
    )
    assert refund.status_code == 201
    assert day_spent(alice) == 2000
    network.post(
        "/api/network/refunds",
        {
            "id": "rf13b",
            "card_id": str(card.pk),
            "authorization_id": "a13",
            "amount": {"amount": "50.00", "currency": "USD"},
        },
    )
    assert day_spent(alice) == 0  # only the 20 still captured came back
    assert LedgerEntry.objects.get(network_txn_id="rf13b").flag == "unlinked_refund"


def test_unlinked_refund_is_recorded_but_creates_no_headroom(alice, network):
    card = card_for(alice, "openai")
    approve(network, card, "30.00", "a14")
    response = network.post(
        "/api/network/refunds",
        {"id": "rf14", "card_id": str(card.pk), "amount": {"amount": "500.00", "currency": "USD"}},
    )
    assert response.status_code == 201
    entry = LedgerEntry.objects.get(network_txn_id="rf14")
    assert (entry.kind, entry.flag, entry.cap_cents) == ("refund", "unlinked_refund", 0)
    assert entry.amount.amount == 500
    assert day_spent(alice) == 3000


def test_refund_for_an_unknown_card_is_404(network, db):
    response = network.post(
        "/api/network/refunds",
        {"id": "rf15", "card_id": "nope", "amount": {"amount": "1.00", "currency": "USD"}},
    )
    assert response.status_code == 404


def test_uncaptured_holds_expire_into_a_release(alice, network, settings):
    settings.AGENTWALLET_HOLD_EXPIRY_DAYS = 7
    approve(network, card_for(alice, "openai"), "25.00", "a16")
    approve(network, card_for(alice, "openai"), "5.00", "a17")
    network.capture("a17", "5.00", id="t17")
    assert holds_expire(now=timezone.now() + timedelta(days=6)) == 0
    assert holds_expire(now=timezone.now() + timedelta(days=8)) == 1
    assert auth("a16").hold_state == "expired"
    assert entries("a16")[-1][:2] == ("release", -2500)
    assert holds_expire(now=timezone.now() + timedelta(days=9)) == 0  # at most once


def test_the_expiry_task_runs_through_celery(alice, network):
    from ledger.tasks import expire_holds_task

    approve(network, card_for(alice, "openai"), "25.00", "a18")
    Authorization.objects.filter(network_id="a18").update(
        decided_at=timezone.now() - timedelta(days=30)
    )
    assert expire_holds_task.delay().get() == 1
    assert auth("a18").hold_state == "expired"


@pytest.mark.parametrize(
    "path",
    [
        "/api/network/authorizations/x/capture",
        "/api/network/authorizations/x/reverse",
        "/api/network/refunds",
    ],
)
@pytest.mark.parametrize(
    "payload",
    [
        {"amount": {"amount": "-1", "currency": "USD"}, "id": "z", "card_id": "c"},
        {"amount": {"amount": "1", "currency": "US"}, "id": "z", "card_id": "c"},
        {"amount": "1", "id": "z", "card_id": "c"},
        {"amount": {"amount": "1", "currency": "USD"}, "id": "z z", "card_id": "c"},
        {"amount": {"amount": "1", "currency": "USD"}, "id": "z", "card_id": "c", "extra": 1},
    ],
)
def test_malformed_lifecycle_requests_write_nothing(network, db, path, payload):
    response = network.post(path, payload)
    assert response.status_code == 400, response.content
    assert LedgerEntry.objects.count() == 0
