"""Spend windows at their edges, FX, and counters that always agree with the ledger."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from django.db import connection
from django.db.models import Sum

from conftest import card_for, merchant_of
from ledger import sql
from ledger.models import Authorization, LedgerEntry, SpendCounter
from ledger.selectors import agent_spend_now
from ledger.services import (
    AuthorizationRequest,
    authorization_capture,
    authorization_decide,
    authorization_reverse,
    counters_rebuild,
)
from ledger.tests.spend_oracle import spend_from_ledger
from policies.models import Policy, Vendor
from policies.services import policy_create
from wallets.models import Agent


def authorize(card, amount, now, network_id=None, currency="USD", trace_id=""):
    return authorization_decide(
        request=AuthorizationRequest(
            network_id=network_id or f"n{random.getrandbits(48)}",
            card_id=str(card.pk),
            amount=Decimal(amount),
            currency=currency,
            merchant_mcc=card.allowed_mccs[0],
            **merchant_of(card),
            trace_id=trace_id,
        ),
        now=now,
    ).authorization


def spend(provisioned, now):
    """The agent's live spend at `now` (the tests read after the entries they made)."""
    agent = Agent.objects.select_related("policy").get(pk=provisioned.agent.pk)
    return agent_spend_now(agent=agent, now=now)


def test_the_rolling_day_does_not_reset_at_midnight(alice):
    card = card_for(alice, "aws")
    burst = datetime(2026, 5, 4, 21, 0, tzinfo=UTC)
    assert authorize(card, "450.00", burst).decision == "approved"
    # After midnight the same 24 hours are still running: no new $500.
    assert authorize(card, "100.00", datetime(2026, 5, 5, 0, 30, tzinfo=UTC)).reason == (
        "daily_cap_exceeded"
    )
    assert spend(alice, burst + timedelta(hours=23, minutes=59, seconds=59)).day_cents == 45000
    assert spend(alice, burst + timedelta(hours=24, seconds=1)).day_cents == 0
    assert authorize(card, "100.00", burst + timedelta(hours=24, seconds=1)).decision == (
        "approved"
    )


def test_the_rolling_day_is_exact_to_the_second_at_its_edge(alice):
    card = card_for(alice, "aws")
    t0 = datetime(2026, 5, 4, 10, 17, 42, tzinfo=UTC)
    authorize(card, "1.00", t0)
    authorize(card, "2.00", t0 + timedelta(seconds=30))
    authorize(card, "4.00", t0 + timedelta(minutes=50))
    edge = t0 + timedelta(hours=24)
    assert spend(alice, edge).day_cents == 700
    assert spend(alice, edge + timedelta(seconds=1)).day_cents == 600
    assert spend(alice, edge + timedelta(seconds=31)).day_cents == 400
    assert spend(alice, edge + timedelta(minutes=50, seconds=1)).day_cents == 0


def _new_york_policy():
    vendors = list(Vendor.objects.filter(slug__in=["aws"]))
    return policy_create(
        slug="ny",
        name="NY",
        currency="USD",
        daily_cap=Decimal("1000"),
        monthly_cap=Decimal("1000"),
        time_zone="America/New_York",
        default_vendors=vendors,
    )


def test_the_month_follows_the_policy_time_zone(provision):
    agent = provision(name="ny-agent", policy=_new_york_policy())
    card = agent.cards[0].card
    # 23:30 on 31 March in New York is already 1 April in UTC.
    late_march = datetime(2026, 4, 1, 3, 30, tzinfo=UTC)
    authorize(card, "600.00", late_march)
    early_april = datetime(2026, 4, 2, 4, 30, tzinfo=UTC)  # 1 April 00:30 New York + 1 day
    assert spend(agent, early_april).month_cents == 0
    assert spend(agent, late_march + timedelta(minutes=10)).month_cents == 60000
    # Still March in New York: the $1,000 month has $400 left.
    assert authorize(card, "400.01", late_march + timedelta(minutes=20)).reason == (
        "daily_cap_exceeded"
    )  # the rolling day is hit first at the same amount
    assert authorize(card, "400.00", early_april).decision == "approved"


def test_month_edge_in_new_york(provision):
    policy = _new_york_policy()
    Policy.objects.filter(pk=policy.pk).update(
        daily_cap=Decimal("1000"), monthly_cap=Decimal("1000")
    )
    agent = provision(name="ny2", policy=policy)
    card = agent.cards[0].card
    march = datetime(2026, 3, 31, 20, 0, tzinfo=UTC)  # 16:00 New York, 31 March
    authorize(card, "900.00", march)
    just_before = datetime(2026, 4, 1, 3, 59, tzinfo=UTC)  # 23:59 New York
    just_after = datetime(2026, 4, 1, 4, 1, tzinfo=UTC)  # 00:01 New York, 1 April
    assert spend(agent, just_before).month_cents == 90000
    assert spend(agent, just_after).month_cents == 0


def test_foreign_currency_is_converted_up_with_its_rate_recorded(alice, fx_rates):
    card = card_for(alice, "aws")  # a Hetzner-style EUR charge on a USD-capped policy
    auth = authorize(card, "100.00", datetime.now(UTC), currency="EUR")
    assert auth.decision == "approved"
    expected_rate = Decimal("1.11720000")  # the shipped ECB file: 1 EUR = 1.1172 USD
    assert auth.fx_rate == expected_rate
    assert auth.fx_rate_date.isoformat() == "2026-10-30"
    assert auth.cap_amount.amount == (Decimal("100.00") * expected_rate).quantize(
        Decimal("0.01"), rounding=ROUND_CEILING
    )
    hold = LedgerEntry.objects.get(authorization=auth)
    assert str(hold.amount.currency) == "EUR"
    assert str(hold.cap_amount.currency) == "USD"
    assert hold.fx_rate == expected_rate


def test_conversion_rounds_against_the_agent(alice, fx_rates):
    card = card_for(alice, "aws")
    auth = authorize(card, "0.01", datetime.now(UTC), currency="JPY")
    # 0.01 JPY is far below a cent, yet it costs the agent a whole cent.
    assert auth.cap_amount.amount == Decimal("0.01")


def test_cross_rates_go_through_the_euro(alice, fx_rates):
    card = card_for(alice, "aws")
    auth = authorize(card, "100.00", datetime.now(UTC), currency="GBP")
    expected = (Decimal("1.1172") / Decimal("0.83380")).quantize(Decimal("0.00000001"))
    assert auth.fx_rate == expected


def test_decision_reads_a_bounded_number_of_queries(alice, django_assert_max_num_queries):
    card = card_for(alice, "aws")
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    for i in range(300):  # a busy day already in the window
        authorize(card, "0.01", now - timedelta(hours=23) + timedelta(minutes=4 * i))
    # Lock-and-load (card, agent, policy, vendor cap), counters, ledger edges, three
    # inserts, and the test's savepoint pair: whatever the window already holds.
    with django_assert_max_num_queries(8):
        authorize(card, "0.01", now + timedelta(minutes=1))


def test_counters_agree_with_the_ledger_and_can_be_rebuilt(alice, bob):
    rng = random.Random(7)
    cards = [card_for(alice, "aws"), card_for(alice, "openai"), card_for(bob, "github")]
    start = datetime(2026, 5, 1, tzinfo=UTC)
    for step in range(250):
        now = start + timedelta(minutes=13 * step + rng.randint(0, 9))
        card = rng.choice(cards)
        auth = authorize(
            card, f"{rng.randint(1, 900) / 100:.2f}", now, trace_id=rng.choice(["", "PR-1", "PR-2"])
        )
        if auth.decision != "approved":
            continue
        roll = rng.random()
        if roll < 0.4:
            authorization_capture(
                network_id=auth.network_id,
                amount=auth.amount.amount,
                currency="USD",
                now=now + timedelta(minutes=5),
            )
        elif roll < 0.6:
            authorization_reverse(network_id=auth.network_id, now=now + timedelta(minutes=3))

    def everything(at):
        return {who.agent.pk: spend(who, at) for who in (alice, bob)}

    # Live reads count all that is posted: read after the last entry, with rolling days
    # that cut through the history.
    last = LedgerEntry.objects.latest("effective_at").effective_at
    checkpoints = [last + timedelta(hours=h, minutes=17) for h in range(0, 26, 3)]
    before = [everything(at) for at in checkpoints]
    rows_before = set(
        SpendCounter.objects.values_list("scope", "grain", "bucket_start", "cents", "holds")
    )
    counters_rebuild()
    rows_after = set(
        SpendCounter.objects.values_list("scope", "grain", "bucket_start", "cents", "holds")
    )
    assert rows_after == rows_before
    assert [everything(at) for at in checkpoints] == before
    # And against a plain SUM over the ledger, the slow way.
    for at in checkpoints:
        for who in (alice, bob):
            plain = (
                LedgerEntry.objects.filter(
                    agent=who.agent, effective_at__gte=at - timedelta(hours=24)
                ).aggregate(total=Sum("cap_cents"))["total"]
                or 0
            )
            assert spend(who, at).day_cents == plain
    assert Authorization.objects.count() > 100


def test_the_spend_read_is_exact_at_every_edge_of_its_windows(alice):
    """The counters' read against plain sums over the ledger, at `now`s sweeping through
    the partial minutes and hours where the rolling windows start."""
    card = card_for(alice, "aws")
    other = card_for(alice, "openai")
    t0 = datetime(2026, 5, 4, 10, 17, 42, tzinfo=UTC)
    offsets = [0, 7, 31, 59, 61, 3600 - 20, 3600 + 5, 23 * 3600 + 50, 24 * 3600 - 3]
    for n, offset in enumerate(offsets):
        when = t0 + timedelta(seconds=offset)
        authorize(card if n % 2 else other, f"{n + 1}.00", when, trace_id="PR-7" if n % 3 else "")
        if n % 4 == 0:
            authorization_capture(
                network_id=Authorization.objects.latest("id").network_id,
                amount=Decimal("0.50"),
                currency="USD",
                now=when,
            )
    seen = set()
    # Around the moment each entry leaves the rolling hour and the rolling day.
    nows = sorted(
        t0 + timedelta(seconds=offset + window + delta)
        for offset in offsets
        for window in (3600, 24 * 3600)
        for delta in range(-70, 71, 7)
    )
    scopes = {"card_ids": [card.pk], "vendor_ids": [card.vendor_id], "trace_ids": ["PR-7"]}
    for now in nows:
        with connection.cursor() as cursor:
            read = sql.spend_read(
                cursor,
                agent_id=alice.agent.pk,
                currency="USD",
                month_time_zone="UTC",
                now=now,
                **scopes,
            )
        expected = spend_from_ledger(
            agent_id=alice.agent.pk, month_time_zone="UTC", now=now, **scopes
        )
        assert read == expected, now
        seen.add((read.day_cents, read.holds_last_hour))
    assert len(seen) > 10  # the sweep saw the windows change, not one value throughout
