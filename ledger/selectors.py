"""Reads of the ledger and of spend: the figures decisions compare with caps."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone
from djmoney.money import Money

from agentwallet.lib.money import from_cents, to_cents
from agentwallet.lib.timewindows import HOUR, floor_to, month_bounds
from approvals.models import CapBump
from cards.models import Card, CardStatus
from ledger import sql
from ledger.models import CounterGrain, LedgerEntry, MonthCounterZone, SpendCounter
from policies import rules
from policies.models import Policy
from policies.selectors import policy_vendor_caps
from wallets.actors import Actor
from wallets.models import Agent


@dataclass(frozen=True)
class CapFigure:
    cap: Money | None
    spent: Money
    bump: Money | None = None  # approved extra room, valid now

    @property
    def remaining(self) -> Money | None:
        if self.cap is None:
            return None
        # Refunds never make headroom beyond the cap itself.
        spent = max(to_cents(self.spent.amount), 0)
        cap = to_cents(self.cap.amount) + (to_cents(self.bump.amount) if self.bump else 0)
        return Money(from_cents(max(cap - spent, 0)), self.cap.currency)


@dataclass(frozen=True)
class CardBudget:
    card: Card
    card_cap: CapFigure  # the card's own monthly cap
    vendor_cap: CapFigure  # the policy's monthly cap for the vendor, across the agent's cards


@dataclass(frozen=True)
class TraceBudget:
    trace_id: str
    figure: CapFigure


@dataclass(frozen=True)
class AgentBudget:
    agent: Agent
    policy: Policy
    as_of: datetime
    day_start: datetime
    month_time_zone: str
    month_start: datetime
    month_end: datetime
    daily: CapFigure
    monthly: CapFigure
    holds_last_hour: int
    cards: list[CardBudget]
    traces: list[TraceBudget]
    bumps: list[CapBump]


def agent_month_time_zone(*, agent: Agent) -> str:
    """The zone the agent's months are counted in: its policy's, except while its month
    counters are being recut after the policy's zone changed (MonthCounterZone)."""
    kept = MonthCounterZone.objects.filter(agent_id=agent.pk).values_list("time_zone", flat=True)
    return kept.first() or agent.policy.time_zone


def agent_spend_now(*, agent: Agent, now: datetime) -> sql.Spend:
    """All of the agent's spend as its decisions read it: every card and vendor it has,
    every trace it spent on (the rebuild check compares these)."""
    cards = list(Card.objects.filter(agent=agent).values_list("pk", "vendor_id"))
    traces = (
        LedgerEntry.objects.filter(agent=agent)
        .exclude(trace_id="")
        .values_list("trace_id", flat=True)
        .distinct()
    )
    with connection.cursor() as cursor:
        return sql.spend_read(
            cursor,
            agent_id=agent.pk,
            currency=agent.policy.currency,
            month_time_zone=agent_month_time_zone(agent=agent),
            now=now,
            card_ids=sorted(card_id for card_id, _ in cards),
            vendor_ids=sorted({vendor_id for _, vendor_id in cards}),
            trace_ids=sorted(traces),
        )


def agent_budget(*, agent: Agent, now: datetime | None = None) -> AgentBudget:
    """Caps, spent and remaining for every window of the agent, from the same spend read
    as its decisions."""
    now = now or timezone.now()
    policy = agent.policy
    currency = policy.currency
    zone = agent_month_time_zone(agent=agent)
    month_start, month_end = month_bounds(now, zone)
    cards = list(
        Card.objects.filter(agent=agent)
        .exclude(status=CardStatus.CLOSED)
        .select_related("vendor")
        .order_by("vendor__name", "created_at")
    )
    # Open traces: the active context, bound ephemeral cards, and this month's traces.
    traces = {card.trace_id for card in cards if card.trace_id}
    if active := agent.active_trace_at(now):
        traces.add(active)
    traces |= set(
        LedgerEntry.objects.filter(agent=agent, effective_at__gte=month_start)
        .exclude(trace_id="")
        .values_list("trace_id", flat=True)
        .distinct()
    )
    with connection.cursor() as cursor:
        spend = sql.spend_read(
            cursor,
            agent_id=agent.pk,
            currency=currency,
            month_time_zone=zone,
            now=now,
            card_ids=[card.pk for card in cards],
            vendor_ids=sorted({card.vendor_id for card in cards}),
            trace_ids=sorted(traces),
        )

    def money(cents: int) -> Money:
        return Money(from_cents(cents), currency)

    bumps = list(
        CapBump.objects.filter(agent=agent, valid_from__lte=now, valid_until__gt=now).order_by(
            "valid_until"
        )
    )
    bumped: dict[str, int] = {}
    for bump in bumps:
        bumped[bump.scope_key] = bumped.get(bump.scope_key, 0) + to_cents(bump.amount.amount)

    def bump_for(key: str) -> Money | None:
        return money(bumped[key]) if key in bumped else None

    vendor_caps = policy_vendor_caps(policy=policy)
    return AgentBudget(
        agent=agent,
        policy=policy,
        as_of=now,
        day_start=now - sql.ROLLING_DAY,
        month_time_zone=zone,
        month_start=month_start,
        month_end=month_end,
        daily=CapFigure(policy.daily_cap, money(spend.day_cents), bump_for(rules.SCOPE_DAILY)),
        monthly=CapFigure(
            policy.monthly_cap, money(spend.month_cents), bump_for(rules.SCOPE_MONTHLY)
        ),
        holds_last_hour=spend.holds_last_hour,
        cards=[
            CardBudget(
                card=card,
                card_cap=CapFigure(
                    card.monthly_cap,
                    money(spend.card_month_cents[card.pk]),
                    bump_for(rules.cap_key(rules.SCOPE_CARD, card_id=card.pk)),
                ),
                vendor_cap=CapFigure(
                    vendor_caps.get(card.vendor_id),
                    money(spend.vendor_month_cents[card.vendor_id]),
                    bump_for(rules.cap_key(rules.SCOPE_VENDOR, vendor_slug=card.vendor.slug)),
                ),
            )
            for card in cards
        ],
        traces=[
            TraceBudget(
                trace_id=trace,
                figure=CapFigure(
                    policy.per_trace_cap,
                    money(cents),
                    bump_for(rules.cap_key(rules.SCOPE_TRACE, trace_id=trace)),
                ),
            )
            for trace, cents in sorted(spend.trace_cents.items())
        ],
        bumps=bumps,
    )


def agents_with_spend(agents: QuerySet[Agent], *, now: datetime) -> QuerySet[Agent]:
    """Annotate each agent with spend (cents) over the rolling 24 hours and 30 days.

    For lists: the calendar month depends on each policy's time zone, so lists show
    the last 30 days; the budget API gives the exact month.
    """
    return agents.annotate(
        spent_24h_cents=Sum(
            "ledger_entries__cap_cents",
            filter=Q(ledger_entries__effective_at__gte=now - sql.ROLLING_DAY),
        ),
        spent_30d_cents=Sum(
            "ledger_entries__cap_cents",
            filter=Q(ledger_entries__effective_at__gte=now - timedelta(days=30)),
        ),
    ).select_related("principal", "policy")


def ledger_entries_for_actor(*, actor: Actor) -> QuerySet[LedgerEntry]:
    entries = LedgerEntry.objects.select_related("vendor", "authorization")
    if actor.is_staff:
        return entries
    return entries.filter(agent_id=actor.agent_id) if actor.agent_id else entries.none()


def trace_list_for_actor(*, actor: Actor, limit: int = 100) -> list[dict[str, object]]:
    """Traces with spend, most recently active first (one row per trace and currency)."""
    rows = (
        ledger_entries_for_actor(actor=actor)
        .exclude(trace_id="")
        .values("trace_id", "cap_amount_currency")
        .annotate(
            cents=Sum("cap_cents"),
            entries=Count("id"),
            first_at=Min("created_at"),
            last_at=Max("created_at"),
        )
        .order_by("-last_at")[:limit]
    )
    return [_trace_summary(row) for row in rows]


def _trace_summary(row: dict[str, object]) -> dict[str, object]:
    return {
        "trace_id": row["trace_id"],
        "spent": Money(from_cents(int(row["cents"] or 0)), row["cap_amount_currency"]),
        "entries": row["entries"],
        "first_at": row["first_at"],
        "last_at": row["last_at"],
    }


def trace_detail_for_actor(*, actor: Actor, trace_id: str) -> dict[str, object]:
    """Spend of one trace, by vendor and by agent; 404 when the actor sees none of it."""
    entries = ledger_entries_for_actor(actor=actor).filter(trace_id=trace_id)
    totals = list(
        entries.values("trace_id", "cap_amount_currency")
        .annotate(
            cents=Sum("cap_cents"),
            entries=Count("id"),
            first_at=Min("created_at"),
            last_at=Max("created_at"),
        )
        .order_by("-cents")
    )
    if not totals:
        raise Http404("No such trace.")
    detail = _trace_summary(totals[0])
    currency = totals[0]["cap_amount_currency"]
    scoped = entries.filter(cap_amount_currency=currency)
    detail["by_vendor"] = [
        {
            "vendor": row["vendor__slug"],
            "spent": Money(from_cents(int(row["cents"])), currency),
            "entries": row["entries"],
        }
        for row in scoped.values("vendor__slug")
        .annotate(cents=Sum("cap_cents"), entries=Count("id"))
        .order_by("-cents")
    ]
    detail["by_agent"] = [
        {
            "agent_id": row["agent_id"],
            "agent_name": row["agent__name"],
            "spent": Money(from_cents(int(row["cents"])), currency),
        }
        for row in scoped.values("agent_id", "agent__name")
        .annotate(cents=Sum("cap_cents"))
        .order_by("-cents")
    ]
    return detail


def top_traces(*, agent: Agent, since: datetime, limit: int = 3) -> list[tuple[str, Money]]:
    """The agent's biggest traces since a time (for the approval card)."""
    rows = (
        LedgerEntry.objects.filter(agent=agent, effective_at__gte=since)
        .exclude(trace_id="")
        .values("trace_id", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"))
        .order_by("-cents")[:limit]
    )
    return [
        (row["trace_id"], Money(from_cents(int(row["cents"] or 0)), row["cap_amount_currency"]))
        for row in rows
    ]


def agents_day_spend(*, agent_ids: Iterable[uuid.UUID], now: datetime) -> dict[uuid.UUID, int]:
    """Cents each agent spent in the last 24 hours by the hour (the window starts at the
    top of the hour 23 hours ago), from the hour counters in one grouped query: for
    lists. An agent's budget gives its exact rolling window."""
    by_scope = {sql.agent_scope(agent_id): agent_id for agent_id in agent_ids}
    rows = (
        SpendCounter.objects.filter(
            grain=CounterGrain.HOUR,
            bucket_start__gte=floor_to(now, HOUR) - timedelta(hours=23),
            scope__in=by_scope,
        )
        .values_list("scope")
        .annotate(total=Sum("cents"))
    )
    return {by_scope[scope]: max(total, 0) for scope, total in rows}
