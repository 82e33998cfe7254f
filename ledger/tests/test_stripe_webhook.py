"""/webhooks/stripe: Stripe Issuing's real-time authorizations and the events after them,
delivered as Stripe delivers them (signed JSON) for cards issued through the real
`stripe` package against a local server speaking Stripe's API (cards.tests.fake_stripe)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import OperationalError
from djmoney.money import Money

from approvals.models import ApprovalRequest, ApprovalStatus
from approvals.services import approval_grant
from cards.services import card_cap_update, card_freeze
from cards.tests.fake_stripe import API_VERSION, deliver, signature_header
from conftest import card_for, merchant_of
from ledger.models import (
    ISSUER_DECLINED,
    Authorization,
    Decision,
    EntryFlag,
    EntryKind,
    HoldState,
    LedgerEntry,
)
from wallets.actors import Actor

LEAD = Actor.system("test")


@pytest.fixture
def stripe_card(fake_stripe, alice):
    return card_for(alice, "openai")


def purchase(fake, card, cents: int, **merchant: Any) -> dict[str, Any]:
    """A purchase on our card as Stripe asks us about it."""
    seen = merchant_of(card)
    merchant.setdefault("merchant_name", seen["merchant_name"])
    merchant.setdefault("merchant_network_id", seen["merchant_network_id"])
    merchant.setdefault("mcc", card.vendor.mccs[0])
    return fake.authorize(card.issuer_card_id, cents, **merchant)


def answer(response) -> dict[str, Any]:
    assert response.status_code == 200, response.content
    assert response["Stripe-Version"] == API_VERSION
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_a_purchase_is_approved_in_the_answer_and_held_once(fake_stripe, stripe_card, client):
    event = purchase(fake_stripe, stripe_card, 1250)
    body = answer(deliver(client, event))
    auth = Authorization.objects.get(network_id=event["data"]["object"]["id"])
    assert body == {
        "approved": True,
        "metadata": {
            "agentwallet_decision": "approved",
            "agentwallet_authorization_id": str(auth.pk),
        },
    }
    assert auth.decision == Decision.APPROVED
    assert auth.card_id == stripe_card.pk
    assert auth.amount == Money("12.50", "USD")
    assert auth.hold_state == HoldState.OPEN
    hold = LedgerEntry.objects.get(authorization=auth)
    assert (hold.kind, hold.amount) == (EntryKind.HOLD, Money("12.50", "USD"))

    # Delivered again: the same answer, nothing written twice.
    assert answer(deliver(client, event)) == body
    assert Authorization.objects.count() == 1
    assert LedgerEntry.objects.count() == 1


def test_a_cap_decline_is_answered_with_its_reason_and_asks_a_lead(
    fake_stripe, stripe_card, client, django_capture_on_commit_callbacks
):
    card_cap_update(card=stripe_card, monthly_cap=Decimal("10.00"), actor=LEAD)
    event = purchase(fake_stripe, stripe_card, 2000)
    body = answer(deliver(client, event))
    approval = ApprovalRequest.objects.get()
    assert body["approved"] is False
    assert body["metadata"]["agentwallet_reason"] == "card_cap_exceeded"
    assert body["metadata"]["agentwallet_cap_scope"] == "card"
    assert body["metadata"]["agentwallet_approval_id"] == str(approval.pk)
    auth = Authorization.objects.get()
    assert (auth.decision, auth.hold_state) == (Decision.DECLINED, HoldState.NONE)
    assert not LedgerEntry.objects.exists()
    assert answer(deliver(client, event)) == body  # once
    assert ApprovalRequest.objects.count() == 1

    # A lead grants the bump: Stripe's own limit on the card is raised with it, so the
    # purchase passes there too.
    with django_capture_on_commit_callbacks(execute=True):
        approval = approval_grant(request=approval, actor_label="lead@example.com")
    assert approval.status == ApprovalStatus.APPROVED
    limits = fake_stripe.cards[stripe_card.issuer_card_id]["spending_controls"]["spending_limits"]
    assert limits == [{"amount": 3000, "categories": None, "interval": "monthly"}]
    again = purchase(fake_stripe, stripe_card, 2000)
    assert answer(deliver(client, again))["approved"] is True


def test_a_frozen_card_and_a_card_not_ours_are_declined(fake_stripe, stripe_card, client):
    card_freeze(card=stripe_card, actor=LEAD, reason="suspicious")
    body = answer(deliver(client, purchase(fake_stripe, stripe_card, 100)))
    assert (body["approved"], body["metadata"]["agentwallet_reason"]) == (False, "card_frozen")

    event = purchase(fake_stripe, stripe_card, 100)
    event["data"]["object"]["card"]["id"] = "ic_not_ours"
    body = answer(deliver(client, event))
    assert (body["approved"], body["metadata"]["agentwallet_reason"]) == (False, "card_not_found")


def test_a_sandbox_card_cannot_be_charged_through_stripe(
    fake_stripe, stripe_card, provision, client, settings
):
    settings.AGENTWALLET_CARD_ISSUER = "sandbox"
    sandbox_card = provision(name="sbx", email="sbx@example.com").cards[0].card
    event = purchase(fake_stripe, stripe_card, 100)
    event["data"]["object"]["card"]["id"] = sandbox_card.issuer_card_id
    body = answer(deliver(client, event))
    assert body["metadata"]["agentwallet_reason"] == "card_not_found"


@pytest.mark.parametrize(
    "signing",
    [
        {"secret": "whsec_someone_else"},
        {"age": 400},  # stale (the tolerance is 300 s)
        {"age": -400},  # from the future
    ],
    ids=["wrong-secret", "stale", "future"],
)
def test_a_bad_or_stale_signature_is_refused_and_writes_nothing(
    fake_stripe, stripe_card, client, signing
):
    if "age" in signing:  # the time of signing, taken now (not when tests were collected)
        signing = {"timestamp": int(time.time()) - signing["age"]}
    response = deliver(client, purchase(fake_stripe, stripe_card, 100), **signing)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not Authorization.objects.exists()


def test_an_unsigned_or_tampered_event_is_refused(fake_stripe, stripe_card, client):
    event = purchase(fake_stripe, stripe_card, 100)
    body = json.dumps(event).encode()
    unsigned = client.generic("POST", "/webhooks/stripe", body, content_type="application/json")
    assert unsigned.status_code == 400
    header = signature_header(body)
    tampered = body.replace(b'"amount": 100', b'"amount": 1')
    response = client.generic(
        "POST",
        "/webhooks/stripe",
        tampered,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header,
    )
    assert response.status_code == 400
    assert not Authorization.objects.exists()


def test_malformed_events_get_a_4xx_not_a_500(fake_stripe, client):
    bodies = (
        b"{not json",
        b"[]",
        b"\xff\xfe not utf-8",
        b"[" * 100_000 + b"]" * 100_000,  # deeper than Python's parser recurses
        json.dumps({"id": "evt_1", "type": "x"}).encode(),
        json.dumps({"id": "evt_1", "type": "x", "data": []}).encode(),
        json.dumps({"id": 5, "type": "x", "data": {"object": {}}}).encode(),
    )
    for body in bodies:
        response = client.generic(
            "POST",
            "/webhooks/stripe",
            body,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature_header(body),
        )
        assert 400 <= response.status_code < 500, (body, response.content)
    assert client.get("/webhooks/stripe").status_code == 405


def test_a_failure_while_deciding_declines(fake_stripe, stripe_card, client, monkeypatch):
    from ledger.services import stripe_events

    for error in (RuntimeError("bug"), OperationalError("server closed the connection")):

        def broken(*, request, error=error):
            raise error

        monkeypatch.setattr(stripe_events, "authorization_decide", broken)
        body = answer(deliver(client, purchase(fake_stripe, stripe_card, 100)))
        assert body == {
            "approved": False,
            "metadata": {
                "agentwallet_decision": "declined",
                "agentwallet_reason": "system_unavailable",
            },
        }
    assert not Authorization.objects.exists()


def test_an_increment_request_is_declined_and_keeps_the_hold(fake_stripe, stripe_card, client):
    event = purchase(fake_stripe, stripe_card, 500)
    assert answer(deliver(client, event))["approved"] is True
    fake_stripe.decided(event["data"]["object"]["id"], True)
    auth = fake_stripe.authorizations[event["data"]["object"]["id"]]
    auth["pending_request"] = {"amount": 300, "merchant_amount": 300, "merchant_currency": "usd"}
    again = fake_stripe.event("issuing_authorization.request", auth)
    body = answer(deliver(client, again))
    assert (body["approved"], body["metadata"]["agentwallet_reason"]) == (
        False,
        "increment_not_supported",
    )
    assert Authorization.objects.get().held_cents == 500


def approved_purchase(fake, card, client, cents: int) -> str:
    event = purchase(fake, card, cents)
    assert answer(deliver(client, event))["approved"] is True
    auth_id = event["data"]["object"]["id"]
    assert deliver(client, fake.decided(auth_id, True)).json()["applied"] is True
    return auth_id


def test_a_capture_clears_the_hold_once(fake_stripe, stripe_card, client):
    auth_id = approved_purchase(fake_stripe, stripe_card, client, 1000)
    event = fake_stripe.capture(auth_id, 1000)
    response = deliver(client, event)
    assert response.json() == {"received": True, "applied": True, "detail": "capture"}
    auth = Authorization.objects.get(network_id=auth_id)
    assert (auth.hold_state, auth.held_cents, auth.captured_cents) == (HoldState.CLOSED, 0, 1000)
    kinds = sorted(LedgerEntry.objects.values_list("kind", flat=True))
    assert kinds == ["capture", "hold", "release"]
    capture = LedgerEntry.objects.get(kind=EntryKind.CAPTURE)
    assert capture.network_txn_id == event["data"]["object"]["id"]
    assert capture.flag == ""

    deliver(client, event)  # again: nothing twice
    assert LedgerEntry.objects.count() == 3


def test_a_capture_above_the_hold_is_recorded_and_flagged(fake_stripe, stripe_card, client):
    auth_id = approved_purchase(fake_stripe, stripe_card, client, 1000)
    deliver(client, fake_stripe.capture(auth_id, 1300))
    capture = LedgerEntry.objects.get(kind=EntryKind.CAPTURE)
    assert (capture.amount, capture.flag) == (Money("13.00", "USD"), EntryFlag.OVER_CAPTURE)


def test_a_refund_gives_back_what_was_captured(fake_stripe, stripe_card, client):
    auth_id = approved_purchase(fake_stripe, stripe_card, client, 1000)
    deliver(client, fake_stripe.capture(auth_id, 1000))
    event = fake_stripe.refund(auth_id, 400)
    assert deliver(client, event).json()["detail"] == "refund"
    refund = LedgerEntry.objects.get(kind=EntryKind.REFUND)
    assert (refund.amount, refund.flag, refund.cap_cents) == (Money("4.00", "USD"), "", -400)
    assert Authorization.objects.get(network_id=auth_id).refunded_cents == 400
    deliver(client, event)
    assert LedgerEntry.objects.filter(kind=EntryKind.REFUND).count() == 1


def test_a_force_capture_on_a_card_we_declined_is_recorded_and_flagged(
    fake_stripe, stripe_card, client
):
    card_freeze(card=stripe_card, actor=LEAD, reason="stop")
    event = purchase(fake_stripe, stripe_card, 700)
    assert answer(deliver(client, event))["approved"] is False
    auth_id = event["data"]["object"]["id"]
    deliver(client, fake_stripe.capture(auth_id, 700))
    forced = LedgerEntry.objects.get()
    assert (forced.kind, forced.flag, forced.amount) == (
        EntryKind.CAPTURE,
        EntryFlag.FORCE_POST,
        Money("7.00", "USD"),
    )
    assert forced.authorization.network_id == auth_id


def test_a_force_capture_without_any_authorization_is_recorded_and_flagged(
    fake_stripe, stripe_card, client
):
    event = fake_stripe.capture(None, 900, card_id=stripe_card.issuer_card_id)
    assert deliver(client, event).json()["detail"] == "capture: forced, no authorization"
    forced = LedgerEntry.objects.get()
    assert (forced.flag, forced.card_id, forced.authorization) == (
        EntryFlag.FORCE_POST,
        stripe_card.pk,
        None,
    )


def test_stripes_own_decline_is_recorded_once(fake_stripe, stripe_card, client):
    event = purchase(fake_stripe, stripe_card, 4200)
    auth_id = event["data"]["object"]["id"]
    created = fake_stripe.decided(auth_id, False, reason="spending_controls")
    assert deliver(client, created).json()["detail"] == "recorded: declined at Stripe"
    auth = Authorization.objects.get(network_id=auth_id)
    assert (auth.decision, auth.reason, auth.amount) == (
        Decision.DECLINED,
        ISSUER_DECLINED,
        Money("42.00", "USD"),
    )
    deliver(client, created)  # again
    assert Authorization.objects.count() == 1
    assert not LedgerEntry.objects.exists()


def test_stripes_own_approval_holds_flagged(fake_stripe, stripe_card, client):
    event = purchase(fake_stripe, stripe_card, 3000)
    auth_id = event["data"]["object"]["id"]
    deliver(client, fake_stripe.decided(auth_id, True, reason="webhook_timeout"))
    auth = Authorization.objects.get(network_id=auth_id)
    assert (auth.decision, auth.hold_state, auth.held_cents) == (
        Decision.APPROVED,
        HoldState.OPEN,
        3000,
    )
    hold = LedgerEntry.objects.get()
    assert (hold.kind, hold.flag) == (EntryKind.HOLD, EntryFlag.FORCE_POST)


def test_stripes_own_approval_captured_before_its_created_event_counts_once(
    fake_stripe, stripe_card, client
):
    """Stripe does not order its events: the capture of an approval it made alone can
    arrive before the authorization's `created` (whose snapshot says pending)."""
    event = purchase(fake_stripe, stripe_card, 2500)
    auth_id = event["data"]["object"]["id"]
    created = fake_stripe.decided(auth_id, True, reason="webhook_timeout")
    captured = fake_stripe.capture(auth_id, 2500)
    assert deliver(client, captured).json()["detail"] == "capture: forced, no authorization"
    assert deliver(client, created).json()["detail"] == "recorded: approved at Stripe"
    auth = Authorization.objects.get(network_id=auth_id)
    assert (auth.decision, auth.hold_state, auth.held_cents) == (
        Decision.APPROVED,
        HoldState.CLOSED,
        0,
    )
    entry = LedgerEntry.objects.get()  # the capture; no hold beside it
    assert (entry.kind, entry.flag, entry.cap_cents) == (
        EntryKind.CAPTURE,
        EntryFlag.FORCE_POST,
        2500,
    )


def test_a_decline_at_stripe_of_what_we_approved_releases_our_hold(
    fake_stripe, stripe_card, client
):
    event = purchase(fake_stripe, stripe_card, 800)
    assert answer(deliver(client, event))["approved"] is True
    auth_id = event["data"]["object"]["id"]
    deliver(client, fake_stripe.decided(auth_id, False, reason="webhook_timeout"))
    auth = Authorization.objects.get(network_id=auth_id)
    assert (auth.hold_state, auth.held_cents) == (HoldState.CLOSED, 0)
    assert sorted(LedgerEntry.objects.values_list("kind", flat=True)) == ["hold", "release"]


def test_reversals_expiry_and_increments(fake_stripe, stripe_card, client):
    partial = approved_purchase(fake_stripe, stripe_card, client, 1000)
    event = fake_stripe.reverse(partial, 400)
    assert deliver(client, event).json()["detail"] == "released: partial reversal"
    deliver(client, event)  # once
    assert Authorization.objects.get(network_id=partial).held_cents == 600
    assert deliver(client, fake_stripe.reverse(partial)).json()["detail"] == "released: reversed"
    auth = Authorization.objects.get(network_id=partial)
    assert (auth.hold_state, auth.held_cents) == (HoldState.CLOSED, 0)

    lapsing = approved_purchase(fake_stripe, stripe_card, client, 500)
    expired = fake_stripe.expire(lapsing)
    assert deliver(client, expired).json()["detail"] == "released: expired"
    deliver(client, expired)  # once
    auth = Authorization.objects.get(network_id=lapsing)
    assert (auth.hold_state, auth.held_cents, auth.reversed_cents) == (HoldState.EXPIRED, 0, 0)
    release = LedgerEntry.objects.get(network_txn_id=expired["id"])
    assert (release.kind, release.cap_cents, release.memo) == (
        EntryKind.RELEASE,
        -500,
        "hold expired at the issuer",
    )

    growing = approved_purchase(fake_stripe, stripe_card, client, 500)
    event = fake_stripe.increment(growing, 250)
    assert deliver(client, event).json()["detail"] == "held: increment"
    deliver(client, event)  # once
    auth = Authorization.objects.get(network_id=growing)
    assert (auth.held_cents, auth.amount) == (750, Money("7.50", "USD"))
    increment = LedgerEntry.objects.get(network_txn_id=event["id"])
    assert (increment.kind, increment.flag, increment.cap_cents) == (
        EntryKind.HOLD,
        EntryFlag.FORCE_POST,
        250,
    )


def test_unknown_event_types_are_acknowledged_and_ignored(fake_stripe, client):
    event = fake_stripe.event("issuing_cardholder.updated", {"id": "ich_1"})
    response = deliver(client, event)
    assert response.json() == {"received": True, "applied": True, "detail": "ignored"}
