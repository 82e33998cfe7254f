"""The pure decision rules: every reason, their order, and properties (Hypothesis)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies import rules

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
CARD = rules.CardFacts(
    status="active",
    expires_at=None,
    exp_year=2029,
    exp_month=6,
    allowed_mccs=("5734", "7372"),
    allowed_merchant_ids=(),
)
CHARGE = rules.ChargeFacts(mcc="5734", merchant_network_id="M1", cap_cents=1000)
LIMITS = rules.Limits(
    per_authorization_cents=5000,
    velocity_per_hour=10,
    holds_last_hour=0,
    card=rules.Limit(10_000, 0),
    vendor=rules.Limit(20_000, 0),
    daily=rules.Limit(50_000, 0),
    monthly=rules.Limit(1_000_000, 0),
    trace=rules.Limit(2000, 0),
)


def decide(card=CARD, agent_status="active", charge=CHARGE, limits=LIMITS, now=NOW):
    return rules.decide(card=card, agent_status=agent_status, charge=charge, limits=limits, now=now)


# One way to break each rule, in rule order.
BREAKERS = {
    rules.CARD_NOT_FOUND: {"card": None},
    rules.CARD_CLOSED: {"card": replace(CARD, status="closed")},
    rules.CARD_EXPIRED: {"card": replace(CARD, expires_at=NOW - timedelta(seconds=1))},
    rules.CARD_FROZEN: {"card": replace(CARD, status="frozen")},
    rules.AGENT_SUSPENDED: {"agent_status": "suspended"},
    rules.MCC_NOT_ALLOWED: {"charge": replace(CHARGE, mcc="5812")},
    rules.MERCHANT_NOT_ALLOWED: {"card": replace(CARD, allowed_merchant_ids=("M2",))},
    rules.CURRENCY_NOT_SUPPORTED: {"charge": replace(CHARGE, cap_cents=None)},
    rules.PRINCIPAL_UNVERIFIED: {"limits": replace(LIMITS, unverified_charge_cents=999)},
    rules.PER_AUTHORIZATION_CAP_EXCEEDED: {"limits": replace(LIMITS, per_authorization_cents=999)},
    rules.VELOCITY_EXCEEDED: {"limits": replace(LIMITS, holds_last_hour=10)},
    rules.CARD_CAP_EXCEEDED: {"limits": replace(LIMITS, card=rules.Limit(10_000, 9_500))},
    rules.DAILY_CAP_EXCEEDED: {"limits": replace(LIMITS, daily=rules.Limit(50_000, 49_001))},
    rules.MONTHLY_CAP_EXCEEDED: {"limits": replace(LIMITS, monthly=rules.Limit(1000, 1))},
    rules.TRACE_CAP_EXCEEDED: {"limits": replace(LIMITS, trace=rules.Limit(2000, 1500))},
}


def test_a_charge_within_every_limit_is_approved():
    assert decide() == rules.APPROVED


def test_every_reason_has_a_breaker_in_rule_order():
    assert tuple(BREAKERS) == rules.RULE_ORDER


@pytest.mark.parametrize("reason", rules.RULE_ORDER)
def test_each_rule_declines_with_its_reason(reason):
    result = decide(**BREAKERS[reason])
    assert not result.approved
    assert result.reason == reason


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        (a, b)
        for i, a in enumerate(rules.RULE_ORDER)
        for b in rules.RULE_ORDER[i + 1 :]
        if set(BREAKERS[a]).isdisjoint(BREAKERS[b])
    ],
)
def test_the_first_failing_rule_names_the_decline(earlier, later):
    assert decide(**BREAKERS[earlier], **BREAKERS[later]).reason == earlier


def test_vendor_cap_is_a_card_cap_decline_naming_the_vendor_scope():
    result = decide(limits=replace(LIMITS, vendor=rules.Limit(20_000, 19_500)))
    assert result.reason == rules.CARD_CAP_EXCEEDED
    assert result.scope == rules.SCOPE_VENDOR


def test_a_cap_decline_names_the_cap_and_its_headroom():
    result = decide(limits=replace(LIMITS, daily=rules.Limit(50_000, 49_400)))
    assert result.scope == rules.SCOPE_DAILY
    assert result.limit_cents == 50_000
    assert result.spent_cents == 49_400
    assert result.remaining_cents == 600
    assert result.is_cap_decline


def test_the_last_cent_fits_and_one_more_does_not():
    assert decide(limits=replace(LIMITS, daily=rules.Limit(50_000, 49_000))).approved
    assert not decide(limits=replace(LIMITS, daily=rules.Limit(50_000, 49_001))).approved


def test_a_bump_raises_the_cap():
    tight = rules.Limit(50_000, 49_500, bump_cents=1000)
    assert decide(limits=replace(LIMITS, daily=tight)).approved


def test_the_plastic_expires_after_its_month():
    card = replace(CARD, exp_year=2026, exp_month=6)
    assert decide(card=card).approved
    assert decide(card=card, now=datetime(2026, 7, 1, tzinfo=UTC)).reason == rules.CARD_EXPIRED


def test_refunds_never_create_headroom_beyond_the_cap():
    assert rules.Limit(1000, -5000).headroom == 1000


cents = st.integers(min_value=0, max_value=10**9)
limits_strategy = st.builds(
    rules.Limit,
    cap_cents=st.none() | cents,
    spent_cents=cents,
    bump_cents=st.integers(min_value=0, max_value=10**6),
)


@given(
    charge=st.integers(min_value=1, max_value=10**9),
    card=limits_strategy,
    vendor=limits_strategy,
    daily=limits_strategy,
    monthly=limits_strategy,
    trace=limits_strategy,
)
def test_approved_exactly_when_every_cap_has_headroom(charge, card, vendor, daily, monthly, trace):
    limits = rules.Limits(card=card, vendor=vendor, daily=daily, monthly=monthly, trace=trace)
    result = decide(charge=replace(CHARGE, cap_cents=charge), limits=limits)
    fits = all(
        limit.headroom is None or charge <= limit.headroom
        for limit in (card, vendor, daily, monthly, trace)
    )
    assert result.approved == fits
    if not result.approved:
        assert result.remaining_cents is not None
        assert 0 <= result.remaining_cents < charge


@given(cap=cents, spent=st.integers(min_value=-(10**9), max_value=10**9))
def test_headroom_is_never_negative_nor_above_the_cap(cap, spent):
    headroom = rules.Limit(cap, spent).headroom
    assert headroom is not None
    assert 0 <= headroom <= cap
