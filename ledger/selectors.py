"""Reads of spend: the figures the budget API and the decision engine compare to caps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone
from djmoney.money import Money

from agentwallet.lib.timewindows import month_bounds, rolling_day_start
from cards.models import Card, CardStatus
from ledger.models import LedgerEntry
from policies.models import Policy
from policies.selectors import policy_vendor_caps
from wallets.models import Agent

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class CapFigure:
    cap: Money | None
    spent: Money

    @property
    def remaining(self) -> Money | None:
        if self.cap is None:
            return None
        return Money(max(self.cap.amount - self.spent.amount, ZERO), self.cap.currency)


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
    month_start: datetime
    month_end: datetime
    daily: CapFigure
    monthly: CapFigure
    cards: list[CardBudget]
    traces: list[TraceBudget]


def _money(amount: Decimal | None, currency: str) -> Money:
    return Money(amount or ZERO, currency)


def trace_spent(*, trace_ids: list[str], currency: str) -> dict[str, Money]:
    """Lifetime spend per trace across all agents and vendors."""
    rows = (
        LedgerEntry.objects.filter(trace_id__in=trace_ids, cap_amount_currency=currency)
        .values("trace_id")
        .annotate(total=Sum("cap_amount"))
    )
    totals = {row["trace_id"]: row["total"] for row in rows}
    return {trace: _money(totals.get(trace), currency) for trace in trace_ids}


def agent_budget(*, agent: Agent, now: datetime | None = None) -> AgentBudget:
    now = now or timezone.now()
    policy = agent.policy
    currency = policy.currency
    day_start = rolling_day_start(now)
    month_start, month_end = month_bounds(now, policy.time_zone)
    entries = LedgerEntry.objects.filter(agent=agent, cap_amount_currency=currency)

    windows = entries.aggregate(
        daily=Sum("cap_amount", filter=Q(created_at__gt=day_start, created_at__lte=now)),
        monthly=Sum("cap_amount", filter=Q(created_at__gte=month_start, created_at__lt=month_end)),
    )
    month_entries = entries.filter(created_at__gte=month_start, created_at__lt=month_end)
    by_card = {
        row["card_id"]: row["total"]
        for row in month_entries.values("card_id").annotate(total=Sum("cap_amount"))
    }
    by_vendor = {
        row["vendor_id"]: row["total"]
        for row in month_entries.values("vendor_id").annotate(total=Sum("cap_amount"))
    }

    vendor_caps = policy_vendor_caps(policy=policy)
    cards = []
    for card in (
        Card.objects.filter(agent=agent)
        .exclude(status=CardStatus.CLOSED)
        .select_related("vendor")
        .order_by("vendor__name", "created_at")
    ):
        cards.append(
            CardBudget(
                card=card,
                card_cap=CapFigure(card.monthly_cap, _money(by_card.get(card.pk), currency)),
                vendor_cap=CapFigure(
                    vendor_caps.get(card.vendor_id), _money(by_vendor.get(card.vendor_id), currency)
                ),
            )
        )

    # Open traces: the active context, bound ephemeral cards, and traces spent on this month.
    open_traces = {card.card.trace_id for card in cards if card.card.trace_id}
    if active := agent.active_trace_at(now):
        open_traces.add(active)
    open_traces |= set(
        month_entries.exclude(trace_id="").values_list("trace_id", flat=True).distinct()
    )
    spent_by_trace = trace_spent(trace_ids=sorted(open_traces), currency=currency)
    traces = [
        TraceBudget(trace_id=trace, figure=CapFigure(policy.per_trace_cap, spent))
        for trace, spent in spent_by_trace.items()
    ]

    return AgentBudget(
        agent=agent,
        policy=policy,
        as_of=now,
        day_start=day_start,
        month_start=month_start,
        month_end=month_end,
        daily=CapFigure(policy.daily_cap, _money(windows["daily"], currency)),
        monthly=CapFigure(policy.monthly_cap, _money(windows["monthly"], currency)),
        cards=cards,
        traces=traces,
    )


def agents_with_spend(agents: QuerySet[Agent], *, now: datetime) -> QuerySet[Agent]:
    """Annotate each agent with spend over the rolling 24 hours and 30 days (in one query).

    For lists: the calendar month depends on each policy's time zone, so lists show
    the last 30 days; the budget API gives the exact month.
    """
    return agents.annotate(
        spent_24h=Sum(
            "ledger_entries__cap_amount",
            filter=Q(ledger_entries__created_at__gt=rolling_day_start(now)),
        ),
        spent_30d=Sum(
            "ledger_entries__cap_amount",
            filter=Q(ledger_entries__created_at__gt=now - timedelta(days=30)),
        ),
    ).select_related("principal", "policy")
