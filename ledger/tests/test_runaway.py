"""Runaways (ledger.services.runaway): a burst far above an agent's or a trace's usual
busy hour is flagged once an hour, told to Slack through the outbox and, when the policy
says freeze, stops the agent's cards; a steady agent and a quiet one's first dollars are
not flagged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from approvals.models import OutboxKind, OutboxMessage
from cards.models import CardEvent, CardStatus
from conftest import card_for
from ledger.models import Runaway
from ledger.services.runaway import runaways_sweep
from policies.models import Policy
from policies.services import policy_create

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


@pytest.fixture
def roomy(starter_policy) -> Policy:
    """Caps far above the bursts, so only the sweep stops them; the starter's vendors."""
    return policy_create(
        default_vendors=starter_policy.default_vendors.all(),
        slug="roomy",
        name="Roomy",
        currency="USD",
        daily_cap=Decimal("5000"),
        monthly_cap=Decimal("50000"),
    )


@pytest.fixture
def agents(provision, roomy):
    return (
        provision(name="alice-agent", email="alice@example.com", policy=roomy),
        provision(name="bob-agent", email="bob@example.com", policy=roomy),
    )


def charge(network, card, amount: str, at: datetime, trace_id: str = "") -> None:
    with time_machine.travel(at, tick=False):
        body = network.authorize(card, amount, **({"trace_id": trace_id} if trace_id else {}))
    assert body.json()["decision"] == "approved", body.json()


def usual_week(network, card) -> None:
    """Three busy hours a day for the 7 days before, 10.00 USD each (the baseline)."""
    for day in range(1, 8):
        for hour in (9, 11, 14):
            charge(network, card, "10.00", NOW.replace(hour=hour) - timedelta(days=day))


def test_a_burst_far_above_the_usual_hour_is_flagged_and_told_to_slack(agents, network):
    alice, _ = agents
    card = card_for(alice, "openai")
    usual_week(network, card)
    for minutes in (50, 30, 20, 5):
        charge(network, card, "40.00", NOW - timedelta(minutes=minutes))

    [runaway] = runaways_sweep(now=NOW)
    assert runaway.subject == "agent"
    assert (runaway.rate_cents, runaway.baseline_cents) == (16000, 1000)
    assert [agent.name for agent in runaway.agents.all()] == ["alice-agent"]
    assert runaway.cards == [
        {
            "id": str(card.pk),
            "last4": card.last4,
            "vendor": card.vendor.name,
            "agent": "alice-agent",
        }
    ]
    assert runaway.frozen == []
    message = OutboxMessage.objects.get(kind=OutboxKind.RUNAWAY)
    assert message.payload["rate"] == {"currency": "USD", "amount": "160.00"}
    assert message.payload["baseline"] == {"currency": "USD", "amount": "10.00"}
    assert message.payload["cards"] == runaway.cards
    card.refresh_from_db()
    assert card.status == CardStatus.ACTIVE  # the policy says notify

    # Every minute's sweep in the same hour flags it once; the next hour again.
    assert runaways_sweep(now=NOW + timedelta(minutes=1)) == []
    assert Runaway.objects.count() == OutboxMessage.objects.filter(kind="runaway").count() == 1
    # A new burst in the next hour is flagged again.
    later = NOW + timedelta(hours=1)
    for minutes in (25, 15, 10, 5):
        charge(network, card, "40.00", later - timedelta(minutes=minutes))
    assert len(runaways_sweep(now=later)) == 1


def test_a_steady_agent_and_a_quiet_agents_first_dollars_are_not_flagged(agents, network):
    alice, bob = agents
    usual_week(network, card_for(alice, "openai"))
    charge(network, card_for(alice, "openai"), "12.00", NOW - timedelta(minutes=10))
    charge(network, card_for(bob, "aws"), "49.99", NOW - timedelta(minutes=10))  # the floor
    assert runaways_sweep(now=NOW) == []
    # Above the floor with no history at all: a runaway (its usual hour is nothing).
    charge(network, card_for(bob, "aws"), "0.01", NOW - timedelta(minutes=5))
    [runaway] = runaways_sweep(now=NOW)
    assert (runaway.subject_key, runaway.baseline_cents) == (f"agent:{bob.agent.pk}", 0)


def test_the_last_hour_is_a_rolling_sixty_minutes(agents, network):
    alice, _ = agents
    charge(network, card_for(alice, "openai"), "60.00", NOW - timedelta(minutes=61))
    assert runaways_sweep(now=NOW) == []


def test_a_runaway_trace_names_every_agent_and_card_on_it(agents, network):
    alice, bob = agents
    trace = "owner/repo#9"
    charge(network, card_for(alice, "openai"), "30.00", NOW - timedelta(minutes=20), trace)
    charge(network, card_for(bob, "aws"), "30.00", NOW - timedelta(minutes=10), trace)
    [runaway] = runaways_sweep(now=NOW)  # each agent alone is under the floor
    assert (runaway.subject, runaway.trace_id, runaway.rate_cents) == ("trace", trace, 6000)
    assert {agent.name for agent in runaway.agents.all()} == {"alice-agent", "bob-agent"}
    assert {card["agent"] for card in runaway.cards} == {"alice-agent", "bob-agent"}
    payload = OutboxMessage.objects.get(kind="runaway").payload
    assert payload["trace_id"] == trace


def test_a_freeze_policy_stops_the_agents_cards_with_the_figures(agents, network, roomy):
    roomy.runaway = "freeze"
    roomy.save()
    alice, bob = agents
    card = card_for(alice, "openai")
    charge(network, card, "75.00", NOW - timedelta(minutes=15))

    [runaway] = runaways_sweep(now=NOW)
    assert runaway.frozen == ["alice-agent"]
    assert set(alice.agent.cards.values_list("status", flat=True)) == {CardStatus.FROZEN}
    event = CardEvent.objects.filter(card=card, kind="frozen").get()
    assert event.actor == "runaway"
    assert "Runaway: 75.00 USD in the last hour" in event.reason
    assert "usual busy hour of 0.00 USD" in event.reason
    assert set(bob.agent.cards.values_list("status", flat=True)) == {CardStatus.ACTIVE}
    # The next charge meets the frozen card.
    with time_machine.travel(NOW, tick=False):
        declined = network.authorize(card, "1.00").json()
    assert declined["reason"] == "card_frozen"
    assert OutboxMessage.objects.get(kind="runaway").payload["frozen"] == ["alice-agent"]


def test_the_beat_schedule_sweeps_every_minute(settings, agents, network):
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-runaways"]
    assert entry == {"task": "ledger.tasks.sweep_runaways_task", "schedule": 60}
    from ledger.tasks import sweep_runaways_task

    charge(
        network, card_for(agents[0], "openai"), "80.00", datetime.now(UTC) - timedelta(minutes=5)
    )
    assert sweep_runaways_task.delay().get(timeout=10) == 1


def test_the_dashboard_lists_the_days_runaways_in_the_leads_scope(agents, network):
    from agentwallet.tests.test_portal import signed_in, user_with
    from wallets.models import TeamLead

    alice, bob = agents
    charge(network, card_for(alice, "openai"), "75.00", NOW - timedelta(minutes=15))
    charge(network, card_for(bob, "aws"), "80.00", NOW - timedelta(minutes=15))
    runaways_sweep(now=NOW)
    finance = signed_in(user_with("Finance"))
    lead_user = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead_user, principal_id=alice.agent.principal_id)
    lead = signed_in(lead_user)
    with time_machine.travel(NOW + timedelta(minutes=1), tick=False):
        everyone = finance.get("/").content.decode()
        theirs = lead.get("/").content.decode()
    panel = everyone[everyone.index('data-testid="runaways"') :]
    assert "alice-agent" in panel
    assert "bob-agent" in panel
    assert "75.00 USD</td>" in panel
    assert "0.00 USD</td>" in panel
    assert "told Slack" in panel
    mine = theirs[theirs.index('data-testid="runaways"') :].split("</article>")[0]
    assert "alice-agent" in mine
    assert "bob-agent" not in mine
    with time_machine.travel(NOW + timedelta(days=1, minutes=1), tick=False):
        later = finance.get("/").content.decode()
    assert "No agent or trace spent far above its usual hour." in later
