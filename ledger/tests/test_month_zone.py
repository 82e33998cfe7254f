"""A policy's time-zone change moves its calendar months. Its agents' month counters are
cut again off the request (a task), only for that policy's agents, and decisions stay
exact meanwhile: they count months in the zone the counters are cut in until the recut."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from djmoney.money import Money

from cards.models import Card
from conftest import card_for, merchant_of
from ledger.models import MonthCounterZone, SpendCounter
from ledger.selectors import agent_budget, agent_month_time_zone, agent_spend_now
from ledger.services import AuthorizationRequest, authorization_decide, month_counters_recut
from ledger.tests.spend_oracle import spend_from_ledger
from policies.models import Policy, Vendor
from policies.services import policy_create
from wallets.models import Agent

# 02:00 UTC on 1 April is still 31 March (22:00) in New York: the two zones' months differ.
IN_THE_GAP = datetime(2026, 4, 1, 2, 0, tzinfo=UTC)


def _policy(slug: str, time_zone: str) -> Policy:
    return policy_create(
        slug=slug,
        name=slug,
        currency="USD",
        daily_cap=Decimal("500"),
        monthly_cap=Decimal("1000"),
        time_zone=time_zone,
        default_vendors=list(Vendor.objects.filter(slug="openai")),
    )


def _decide(card: Card, amount: str, now: datetime, network_id: str) -> str:
    auth = authorization_decide(
        request=AuthorizationRequest(
            network_id=network_id,
            card_id=str(card.pk),
            amount=Decimal(amount),
            currency="USD",
            merchant_mcc=card.allowed_mccs[0],
            **merchant_of(card),
        ),
        now=now,
    ).authorization
    return auth.reason or auth.decision


def _counter_rows(agent_ids) -> set[tuple]:
    scopes = [f"agent:{agent_id}" for agent_id in agent_ids]
    return set(
        SpendCounter.objects.filter(scope__in=scopes).values_list(
            "scope", "grain", "bucket_start", "cents"
        )
    )


def _setup(provision):
    """An agent in New York whose $90 charge on its $100 card falls in the gap, and an
    agent of another policy with spend of its own."""
    new_york, other = _policy("ny", "America/New_York"), _policy("other", "Europe/Berlin")
    moving = provision(name="moving", email="m@example.com", policy=new_york)
    staying = provision(name="staying", email="s@example.com", policy=other)
    card = card_for(moving, "openai")
    Card.objects.filter(pk=card.pk).update(monthly_cap=Money("100.00", "USD"))
    assert _decide(card, "90.00", IN_THE_GAP, "gap-1") == "approved"
    assert _decide(card_for(staying, "openai"), "5.00", IN_THE_GAP, "other-1") == "approved"
    return new_york, moving, staying, card


def test_a_time_zone_change_recuts_off_the_request_and_only_that_policys_agents(
    provision, staff_client, django_capture_on_commit_callbacks
):
    _, moving, staying, _ = _setup(provision)
    everyone = [moving.agent.pk, staying.agent.pk]
    before = _counter_rows(everyone)

    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        response = staff_client.patch("/api/policies/ny", {"time_zone": "UTC"}, format="json")
    assert response.status_code == 200, response.content
    # The request changed no counter; it only noted which zone the months are cut in.
    assert _counter_rows(everyone) == before
    assert list(MonthCounterZone.objects.values_list("agent_id", "time_zone")) == [
        (moving.agent.pk, "America/New_York")
    ]

    for callback in after_commit:  # the recut task, queued on commit (eager here)
        callback()

    assert not MonthCounterZone.objects.exists()
    after = _counter_rows(everyone)
    staying_rows = {row for row in before if row[0] == f"agent:{staying.agent.pk}"}
    assert staying_rows <= after  # the other policy's agents are untouched
    moving_months = {row for row in after if row[0] == f"agent:{moving.agent.pk}"}
    assert (f"agent:{moving.agent.pk}", "month", datetime(2026, 4, 1, tzinfo=UTC), 9000) in (
        moving_months
    )
    agent = Agent.objects.select_related("policy").get(pk=moving.agent.pk)
    assert agent_month_time_zone(agent=agent) == "UTC"


def test_decisions_count_months_in_the_zone_the_counters_are_cut_in_until_the_recut(
    provision, staff_client, django_capture_on_commit_callbacks
):
    _, moving, _, card = _setup(provision)
    now = IN_THE_GAP + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        staff_client.patch("/api/policies/ny", {"time_zone": "UTC"}, format="json")

    # Before the recut the $90 is in New York's March bucket, where the card's month is
    # still read: $20 more would pass its $100 cap, $10 does not. (Reading April in UTC
    # from counters cut in New York would find nothing and approve the $20.)
    assert _decide(card, "20.00", now, "meanwhile-1") == "card_cap_exceeded"
    agent = Agent.objects.select_related("policy").get(pk=moving.agent.pk)
    assert agent_budget(agent=agent, now=now).month_time_zone == "America/New_York"

    for callback in after_commit:
        callback()

    # After it, April in UTC holds the same $90: the same cap, the same answer.
    assert _decide(card, "20.00", now, "after-1") == "card_cap_exceeded"
    assert _decide(card, "10.00", now, "after-2") == "approved"
    assert agent_spend_now(agent=agent, now=now) == spend_from_ledger(
        agent_id=agent.pk,
        month_time_zone="UTC",
        now=now,
        card_ids=[card.pk],
        vendor_ids=[card.vendor_id],
    )


def test_postings_while_the_recut_waits_are_counted_in_the_old_zone(
    provision, staff_client, django_capture_on_commit_callbacks
):
    _, moving, _, card = _setup(provision)
    now = IN_THE_GAP + timedelta(minutes=30)
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        staff_client.patch("/api/policies/ny", {"time_zone": "UTC"}, format="json")
    assert _decide(card, "5.00", now, "meanwhile-2") == "approved"
    agent = Agent.objects.select_related("policy").get(pk=moving.agent.pk)
    ny_march = spend_from_ledger(
        agent_id=agent.pk, month_time_zone="America/New_York", now=now, card_ids=[card.pk]
    )
    assert agent_spend_now(agent=agent, now=now).card_month_cents == ny_march.card_month_cents
    assert ny_march.card_month_cents[card.pk] == 9500

    for callback in after_commit:
        callback()
    assert agent_spend_now(agent=agent, now=now).card_month_cents == {card.pk: 9500}
    assert month_counters_recut(agent_id=agent.pk) is False  # nothing left to recut


def test_changing_the_zone_back_before_the_recut_keeps_the_zone_the_counters_have(
    provision, staff_client, django_capture_on_commit_callbacks
):
    _, moving, _, _ = _setup(provision)
    with django_capture_on_commit_callbacks(execute=False) as first:
        staff_client.patch("/api/policies/ny", {"time_zone": "UTC"}, format="json")
    with django_capture_on_commit_callbacks(execute=False):
        staff_client.patch("/api/policies/ny", {"time_zone": "Asia/Tokyo"}, format="json")
    assert MonthCounterZone.objects.get(agent_id=moving.agent.pk).time_zone == "America/New_York"
    for callback in first:
        callback()
    assert not MonthCounterZone.objects.exists()
    agent = Agent.objects.select_related("policy").get(pk=moving.agent.pk)
    assert agent_month_time_zone(agent=agent) == "Asia/Tokyo"
