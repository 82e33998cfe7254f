"""Each invariant the database states: a bad row is refused by the database itself."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from cards.models import Card, CardEvent, CardStatus
from ledger.models import LedgerEntry
from policies.models import Policy, PolicyChange, PolicyVendorCap, Vendor
from wallets.models import Agent, ApiKey, Principal


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ({"status": "melted"}, "cards_card_status_valid"),
        ({"monthly_cap": Decimal("0")}, "cards_card_monthly_cap_positive"),
        ({"monthly_cap": Decimal("-1")}, "cards_card_monthly_cap_positive"),
        ({"exp_month": 13}, "cards_card_exp_month_valid"),
        ({"exp_month": 0}, "cards_card_exp_month_valid"),
        ({"is_ephemeral": True, "expires_at": None}, "cards_card_ephemeral_expires"),
    ],
)
def test_card_constraints(alice, values, constraint):
    card = alice.cards[0].card
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        Card.objects.filter(pk=card.pk).update(**values)


def test_one_open_standing_card_per_agent_and_vendor(alice):
    first = alice.cards[0].card
    other = alice.cards[1].card
    with pytest.raises(IntegrityError), transaction.atomic():
        Card.objects.filter(pk=other.pk).update(vendor=first.vendor)
    # A closed card frees the slot, and ephemeral cards never take it.
    Card.objects.filter(pk=first.pk).update(status=CardStatus.CLOSED)
    Card.objects.filter(pk=other.pk).update(vendor=first.vendor)
    Card.objects.filter(pk=first.pk).update(
        status=CardStatus.ACTIVE, is_ephemeral=True, expires_at=timezone.now()
    )


def test_card_numbers_and_issuer_ids_are_unique(alice):
    a, b = alice.cards[0].card, alice.cards[1].card
    with pytest.raises(IntegrityError), transaction.atomic():
        Card.objects.filter(pk=b.pk).update(number_fingerprint=a.number_fingerprint)
    with pytest.raises(IntegrityError), transaction.atomic():
        Card.objects.filter(pk=b.pk).update(issuer_card_id=a.issuer_card_id)


def test_card_event_constraints(alice):
    card = alice.cards[0].card
    for values in (
        {"kind": "exploded", "actor": "x"},
        {"kind": "issued", "actor": ""},
        {"kind": "frozen", "actor": "x", "reason": ""},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            CardEvent.objects.create(card=card, **values)


@pytest.mark.parametrize(
    "values",
    [
        {"daily_cap": Decimal("0")},
        {"monthly_cap": Decimal("-5")},
        {"per_trace_cap": Decimal("0")},
        {"per_authorization_cap": Decimal("-1")},
        {"x402_per_call_cap": Decimal("0")},
        {"velocity_per_hour": 0},
        {"x402_allowed": True, "x402_per_call_cap": None},
        {"daily_cap_currency": "EUR"},
        {"per_trace_cap_currency": "EUR"},
        {"daily_cap": Decimal("20000")},  # above the monthly cap
    ],
)
def test_policy_constraints(starter_policy, values):
    with pytest.raises(IntegrityError), transaction.atomic():
        Policy.objects.filter(pk=starter_policy.pk).update(**values)


def test_policy_vendor_cap_constraints(starter_policy):
    cap = PolicyVendorCap.objects.filter(policy=starter_policy).first()
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVendorCap.objects.filter(pk=cap.pk).update(monthly_cap=Decimal("0"))
    with pytest.raises(IntegrityError), transaction.atomic():
        PolicyVendorCap.objects.create(
            policy=starter_policy, vendor=cap.vendor, monthly_cap=Decimal("1")
        )


def test_policy_change_names_who_and_what(starter_policy):
    for values in ({"actor": "", "field": "daily_cap"}, {"actor": "user:x", "field": ""}):
        with pytest.raises(IntegrityError), transaction.atomic():
            PolicyChange.objects.create(policy=starter_policy, changed_at=timezone.now(), **values)


def test_vendor_constraints(db):
    vendor = Vendor.objects.first()
    for values in ({"category": "snacks"}, {"slug": ""}, {"name": ""}):
        with pytest.raises(IntegrityError), transaction.atomic():
            Vendor.objects.filter(pk=vendor.pk).update(**values)


def test_agent_constraints(alice, bob):
    agent = alice.agent
    for values in (
        {"status": "rogue"},
        {"name": ""},
        {"trace_id": "PR-1"},
        {"trace_expires_at": timezone.now()},
        {"name": bob.agent.name, "principal": bob.agent.principal},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Agent.objects.filter(pk=agent.pk).update(**values)


def test_principal_constraints(alice, bob):
    Principal.objects.filter(pk=alice.agent.principal_id).update(slack_user_id="U1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Principal.objects.filter(pk=bob.agent.principal_id).update(slack_user_id="U1")
    with pytest.raises(IntegrityError), transaction.atomic():
        Principal.objects.filter(pk=bob.agent.principal_id).update(email="")


def test_api_key_constraints(alice):
    key = alice.api_key
    for values in (
        {"kind": "root"},
        {"kind": "staff"},
        {"agent": None},
        {"revoked": True},
        {"revoked_at": timezone.now()},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            ApiKey.objects.filter(pk=key.pk).update(**values)


def test_ledger_entry_constraints(alice):
    card = alice.cards[0].card
    when = timezone.now() - timedelta(minutes=1)
    base = {
        "agent": alice.agent,
        "card": card,
        "vendor": card.vendor,
        "created_at": when,
        "effective_at": when,
    }
    one = {"amount": Decimal("1"), "cap_amount": Decimal("1"), "cap_cents": 100}
    LedgerEntry.objects.create(kind="hold", **one, **base)
    for values in (
        {**one, "kind": "teleport"},
        {**one, "kind": "hold", "cap_cents": -100, "cap_amount": Decimal("-1")},
        {**one, "kind": "refund"},
        {**one, "kind": "hold", "amount": Decimal("-1")},
        {**one, "kind": "hold", "rail": "wire"},
        {**one, "kind": "hold", "flag": "weird"},
        {**one, "kind": "hold", "fx_rate": Decimal("0")},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            LedgerEntry.objects.create(**base, **values)


def test_authorization_constraints(alice):
    from ledger.models import Authorization

    card = alice.cards[0].card
    base = {
        "card": card,
        "agent": alice.agent,
        "requested_card_id": str(card.pk),
        "amount": Decimal("5"),
        "merchant_mcc": "5734",
        "decided_at": timezone.now(),
    }
    Authorization.objects.create(
        network_id="ok", decision="approved", hold_state="open", held_cents=500, **base
    )
    for values in (
        {"network_id": "ok", "decision": "approved", "hold_state": "open"},  # duplicate id
        {"network_id": "a", "decision": "maybe", "reason": "x", "hold_state": "none"},
        {"network_id": "b", "decision": "declined", "reason": "", "hold_state": "none"},
        {"network_id": "c", "decision": "approved", "reason": "card_frozen", "hold_state": "open"},
        {
            "network_id": "d",
            "decision": "declined",
            "reason": "card_frozen",
            "hold_state": "open",
            "held_cents": 500,
        },
        {"network_id": "e", "decision": "approved", "hold_state": "open", "held_cents": -1},
        {
            "network_id": "f",
            "decision": "approved",
            "hold_state": "open",
            "resolved_at": timezone.now(),
        },
        {"network_id": "g", "decision": "approved", "hold_state": "open", "amount": Decimal("0")},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Authorization.objects.create(**{**base, **values})


def test_spend_counter_and_approval_constraints(alice):
    from approvals.models import ApprovalRequest
    from ledger.models import SpendCounter

    when = timezone.now()
    SpendCounter.objects.create(scope="agent:x", grain="hour", bucket_start=when)
    with pytest.raises(IntegrityError), transaction.atomic():
        SpendCounter.objects.create(scope="agent:x", grain="hour", bucket_start=when)
    with pytest.raises(IntegrityError), transaction.atomic():
        SpendCounter.objects.create(scope="agent:x", grain="week", bucket_start=when)
    base = {
        "agent": alice.agent,
        "scope": "daily",
        "scope_key": "daily",
        "cap_limit": Decimal("1"),
        "spent": Decimal("1"),
        "requested_amount": Decimal("1"),
        "created_at": when,
        "expires_at": when,
    }
    ApprovalRequest.objects.create(**base)
    with pytest.raises(IntegrityError), transaction.atomic():
        ApprovalRequest.objects.create(**base)  # a second open request for the same cap
    ApprovalRequest.objects.create(**{**base, "status": "denied", "decided_at": when})
    for values in (
        {"scope_key": "x", "status": "maybe"},
        {"scope_key": "y", "status": "denied"},  # decided without a time
        {"scope_key": "z", "decided_at": when},  # pending with a decision time
        {"scope_key": "w", "status": "approved", "decided_at": when},  # no amount
        {"scope_key": "v", "requested_amount": Decimal("0")},
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            ApprovalRequest.objects.create(**{**base, **values})
