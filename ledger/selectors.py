"""Reads of the ledger and of spend: the figures decisions compare with caps."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import BigIntegerField, Count, Max, Min, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.http import Http404
from django.utils import timezone
from djmoney.money import Money

from agentwallet.lib.money import from_cents, to_cents
from agentwallet.lib.timewindows import HOUR, floor_to, month_bounds
from agentwallet.portal.charts import DayRow, day_rows_svg, layer_totals
from approvals.models import CapBump
from cards.models import Card, CardStatus
from ledger import sql
from ledger.exports import LedgerExport, parse_group_by
from ledger.filters import LedgerEntryFilter
from ledger.models import (
    Authorization,
    CounterGrain,
    DaySpend,
    Decision,
    LedgerEntry,
    MonthCounterZone,
    SpendCounter,
    SpendRollupMark,
    TraceAgentMonthSpend,
    TraceMonthSpend,
)
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
        .order_by()  # the default ordering would make every row distinct
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
        .order_by()  # the default ordering would make every row distinct
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


class InvalidExport(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


def ledger_export_for_actor(*, actor: Actor, params: Mapping[str, str]) -> LedgerExport:
    """The export of the ledger's filters and `group_by` in `params` (a query string's
    values), of the entries the actor may read; InvalidExport says what is wrong."""
    filterset = LedgerEntryFilter(params, queryset=ledger_entries_for_actor(actor=actor))
    if not filterset.is_valid():
        raise InvalidExport({name: list(errors) for name, errors in filterset.errors.items()})
    try:
        group_by = parse_group_by(params.get("group_by"))
    except ValueError as exc:
        raise InvalidExport({"group_by": [str(exc)]}) from None
    if not group_by:
        return LedgerExport(entries=filterset.qs)
    declines = declined_authorizations_for_actor(actor=actor, filters=filterset.form.cleaned_data)
    return LedgerExport(entries=filterset.qs, declines=declines, group_by=group_by)


def declined_authorizations_for_actor(
    *, actor: Actor, filters: dict[str, object]
) -> QuerySet[Authorization]:
    """The declined authorizations a ledger filter (LedgerEntryFilter's cleaned values)
    selects, for the actor: the grouped export's declined attempts. A decline writes no
    entry, so it has no kind or flag: a filter on either selects none."""
    declines = Authorization.objects.filter(decision=Decision.DECLINED)
    if not actor.is_staff:
        declines = declines.filter(agent_id=actor.agent_id) if actor.agent_id else declines.none()
    if filters.get("kind") or filters.get("flag") or filters.get("rail") not in (None, "", "card"):
        return declines.none()
    lookups = {
        "agent": "agent_id",
        "card": "card_id",
        "vendor": "vendor__slug",
        "trace_id": "trace_id",
        "since": "decided_at__gte",
        "until": "decided_at__lt",
    }
    return declines.filter(
        **{
            lookup: filters[name]
            for name, lookup in lookups.items()
            if filters.get(name) not in (None, "")
        }
    )


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


# --- The portal's trace pages ----------------------------------------------------------
#
# A trace's budget is shared: every agent that spends on it draws on the trace's lifetime
# counter in its policy's currency (`trace:<currency>:<trace>`), against the per-trace cap
# of its own policy, plus any approved bump on `trace:<id>` (ledger.services.authorization
# decides trace_cap_exceeded so). The counter holds every agent's spend, whoever reads it.

TRACE_PAGE_SIZE = 25
TRACE_ENTRIES_PAGE_SIZE = 50
TRACE_CHART_MIN_DAYS = 14
TRACE_CHART_MAX_DAYS = 60
TRACE_CHART_VENDORS = 6  # the rest stack as one "Other vendors" layer
TRACE_NO_VENDOR = "No vendor"
TRACE_OTHER_VENDORS = "Other vendors"


@dataclass(frozen=True)
class TraceAgentCap:
    """The per-trace cap one agent's policy puts on a trace, as that agent's next decision
    reads it: the cap, approved extra room valid now, and the trace's lifetime spend by
    every agent in the policy's currency. The same figure as the trace's entry in
    `GET /api/agents/{id}/budget` (`agent_budget`)."""

    agent_id: uuid.UUID
    agent_name: str
    policy_name: str
    currency: str
    figure: CapFigure

    @property
    def share(self) -> int:
        """Percent of the cap (with its bump) spent, 0 to 100; 0 without a cap."""
        figure = self.figure
        if figure.cap is None:
            return 0
        room = to_cents(figure.cap.amount) + (to_cents(figure.bump.amount) if figure.bump else 0)
        return _share(to_cents(figure.spent.amount), room)


def _figure_key(cap: TraceAgentCap) -> tuple[object, ...]:
    figure = cap.figure
    remaining = figure.remaining
    return (
        cap.currency,
        figure.cap.amount if figure.cap else None,
        figure.spent.amount,
        remaining.amount if remaining else None,
    )


def _shared_cap(caps: list[TraceAgentCap]) -> CapFigure | None:
    """The figure when every agent's cap on the trace reads the same, else None."""
    if caps and len({_figure_key(cap) for cap in caps}) == 1 and caps[0].figure.cap:
        return caps[0].figure
    return None


def trace_caps_read(
    *, pairs: Iterable[tuple[str, Agent]], now: datetime
) -> dict[tuple[str, uuid.UUID], TraceAgentCap]:
    """Each (trace, agent)'s cap figure, for the pairs given (agents with their policies
    loaded): the traces' lifetime counters in one query and the bumps valid now in
    another, whatever the number of traces and agents."""
    pairs = list(pairs)
    if not pairs:
        return {}
    agents = {agent.pk: agent for _, agent in pairs}
    traces = sorted({trace for trace, _ in pairs})
    scopes = {sql.trace_scope(agent.policy.currency, trace) for trace, agent in pairs}
    counted = dict(
        SpendCounter.objects.filter(grain=CounterGrain.TOTAL, scope__in=scopes).values_list(
            "scope", "cents"
        )
    )
    keys = {rules.cap_key(rules.SCOPE_TRACE, trace_id=trace): trace for trace in traces}
    bumped: dict[tuple[uuid.UUID, str], int] = {}
    for agent_id, key, amount in CapBump.objects.filter(
        agent_id__in=list(agents),
        scope_key__in=keys,
        valid_from__lte=now,
        valid_until__gt=now,
    ).values_list("agent_id", "scope_key", "amount"):
        bumped[(agent_id, keys[key])] = bumped.get((agent_id, keys[key]), 0) + to_cents(amount)
    caps = {}
    for trace, agent in pairs:
        policy = agent.policy
        currency = policy.currency
        bump = bumped.get((agent.pk, trace))
        caps[(trace, agent.pk)] = TraceAgentCap(
            agent_id=agent.pk,
            agent_name=agent.name,
            policy_name=policy.name,
            currency=currency,
            figure=CapFigure(
                policy.per_trace_cap,
                Money(from_cents(counted.get(sql.trace_scope(currency, trace), 0)), currency),
                Money(from_cents(bump), currency) if bump is not None else None,
            ),
        )
    return caps


@dataclass
class TraceMonthRow:
    """One trace's spend this month in one cap currency, by the agents in scope."""

    trace_id: str
    currency: str
    spent: Decimal
    last_at: datetime
    agents: list[str]
    vendors: list[str]
    caps: list[TraceAgentCap]  # one per agent of the row whose policy is in its currency

    @property
    def cap(self) -> CapFigure | None:
        return _shared_cap(self.caps)

    @property
    def caps_vary(self) -> bool:
        return len({_figure_key(cap) for cap in self.caps}) > 1


@dataclass
class TraceMonthPage:
    month_start: datetime
    month_end: datetime
    page: Page  # of TraceMonthSpent rows; `rows` has the page's read out
    rows: list[TraceMonthRow]


def trace_month_page(
    *,
    principal_ids: Iterable[int] | None,
    now: datetime,
    prefix: str = "",
    page: object = 1,
    per_page: int = TRACE_PAGE_SIZE,
) -> TraceMonthPage:
    """Traces by their spend this calendar month (UTC), by the teams' agents only.

    The month's spend per trace comes from the trace-month rollup and the ledger's tail
    after it (`trace_month_spend_read`, one statement), ranked and paged in Python. The
    page's traces then take five more queries whatever their number: their agents,
    vendors and last entry this month (`trace_month_spenders_read`, the agent rollup and
    the tail), that entry's time, those agents with their policies, and their caps
    (`trace_caps_read`: the lifetime counters and the bumps).
    The month is UTC's because a trace spans agents whose policies may count months in
    different zones."""
    month_start, month_end = month_bounds(now, "UTC")
    ranked = trace_month_spend_read(principal_ids=principal_ids, now=now, prefix=prefix)
    paged = Paginator(ranked, per_page).get_page(page)
    found: list[TraceMonthSpent] = list(paged.object_list)
    result = TraceMonthPage(month_start=month_start, month_end=month_end, page=paged, rows=[])
    if not found:
        return result
    # The last entry by id, not by its time: a timestamp per group costs far more to
    # load than an integer (Django's psycopg loaders), and ids follow posting order.
    agent_ids: dict[tuple[str, str], set[uuid.UUID]] = defaultdict(set)
    vendors: dict[tuple[str, str], set[str]] = defaultdict(set)
    last_ids: dict[tuple[str, str], int] = defaultdict(int)
    for spender in trace_month_spenders_read(
        principal_ids=principal_ids, now=now, trace_ids=[row.trace_id for row in found]
    ):
        key = (spender.trace_id, spender.currency)
        agent_ids[key].add(spender.agent_id)
        vendors[key].add(spender.vendor or TRACE_NO_VENDOR)
        last_ids[key] = max(spender.last_entry_id, last_ids[key])
    posted = dict(
        LedgerEntry.objects.filter(pk__in=last_ids.values()).values_list("pk", "created_at")
    )
    spenders = {
        agent.pk: agent
        for agent in Agent.objects.filter(
            pk__in={agent_id for ids in agent_ids.values() for agent_id in ids}
        ).select_related("policy")
    }
    caps = trace_caps_read(
        pairs={(trace, spenders[pk]) for (trace, _), ids in agent_ids.items() for pk in ids},
        now=now,
    )
    for row in found:
        key = (row.trace_id, row.currency)
        row_agents = sorted((spenders[pk] for pk in agent_ids[key]), key=lambda a: a.name)
        result.rows.append(
            TraceMonthRow(
                trace_id=row.trace_id,
                currency=row.currency,
                spent=from_cents(row.cents),
                last_at=posted[last_ids[key]],
                agents=[agent.name for agent in row_agents],
                vendors=sorted(vendors[key]),
                caps=[
                    caps[(row.trace_id, agent.pk)]
                    for agent in row_agents
                    if agent.policy.currency == row.currency
                ],
            )
        )
    return result


@dataclass
class TraceShare:
    """A vendor's or an agent's part of a trace's spend in one currency."""

    label: str
    cents: int
    entries: int
    share: int  # percent of the currency's spend on the trace (0 for net refunds)
    agent_id: uuid.UUID | None = None

    @property
    def spent(self) -> Decimal:
        return from_cents(self.cents)


@dataclass
class TraceCurrency:
    """A trace's spend in one cap currency, by the agents in scope, over its life."""

    trace_id: str
    currency: str
    cents: int
    entries: int
    first_at: datetime
    last_at: datetime
    by_vendor: list[TraceShare]
    by_agent: list[TraceShare]
    days: list[date]  # the chart's days, oldest first
    vendors: list[str]  # the chart's layers
    rows: list[DayRow]  # one per day of `days`

    @property
    def spent(self) -> Decimal:
        return from_cents(self.cents)

    @property
    def rows_with_spend(self) -> list[DayRow]:
        return [row for row in self.rows if any(row.cents)]

    @property
    def chart_total(self) -> Decimal:
        return from_cents(sum(sum(row.cents) for row in self.rows))

    @property
    def vendor_totals(self) -> list[Decimal]:
        return layer_totals(self.rows, self.vendors)

    @property
    def svg(self) -> str:
        """Escaped markup (agentwallet/portal/charts.py): safe to render as is."""
        return day_rows_svg(
            title=f"Spend on {self.trace_id} per day by vendor ({self.currency})",
            days=self.days,
            layers=self.vendors,
            rows=self.rows,
            currency=self.currency,
            chart_id=f"trace-{self.currency}",
        )


@dataclass
class TraceDetail:
    trace_id: str
    currencies: list[TraceCurrency]  # most spend first
    caps: list[TraceAgentCap]  # one per agent in scope that spent on it, by name

    @property
    def first_at(self) -> datetime:
        return min(currency.first_at for currency in self.currencies)

    @property
    def last_at(self) -> datetime:
        return max(currency.last_at for currency in self.currencies)

    @property
    def cap(self) -> CapFigure | None:
        return _shared_cap(self.caps)


def _share(cents: int, total: int) -> int:
    return 0 if total <= 0 or cents <= 0 else min(round(cents * 100 / total), 100)


def trace_detail_read(*, agents: QuerySet[Agent], trace_id: str, now: datetime) -> TraceDetail:
    """One trace's spend by the given agents: by vendor, by agent and per UTC day (the
    chart: the days of its activity, the last 60 at most), and each agent's cap on it.
    Http404 when none of those agents spent on it, whoever else did.

    The spend comes from the ledger in ONE grouped query over the trace_id index (no
    counter holds a trace by vendor, agent or day, nor one team's share of it); the caps
    from the trace's lifetime counters (`trace_caps_read`); four queries in all, however
    many entries, agents or vendors the trace has."""
    grouped = (
        LedgerEntry.objects.filter(agent__in=agents, trace_id=trace_id)
        .annotate(day=TruncDate("effective_at", tzinfo=UTC))
        .values_list("cap_amount_currency", "day", "vendor__name", "agent_id", "agent__name")
        .annotate(
            cents=Sum("cap_cents"),
            entries=Count("id"),
            first_at=Min("created_at"),
            last_at=Max("created_at"),
        )
        .order_by()
    )
    cells: dict[str, list[tuple[date, str, uuid.UUID, str, int, int, datetime, datetime]]]
    cells = defaultdict(list)
    for currency, day, vendor, agent_id, agent_name, cents, count, first, last in grouped:
        cells[currency].append(
            (day, vendor or TRACE_NO_VENDOR, agent_id, agent_name, int(cents), count, first, last)
        )
    if not cells:
        raise Http404("No such trace.")
    currencies = [_trace_currency(trace_id, code, rows) for code, rows in cells.items()]
    currencies.sort(key=lambda figures: (-figures.cents, figures.currency))
    spenders = list(
        Agent.objects.filter(
            pk__in={row[2] for rows in cells.values() for row in rows}
        ).select_related("policy")
    )
    spenders.sort(key=lambda agent: (agent.name, str(agent.pk)))
    caps = trace_caps_read(pairs=[(trace_id, agent) for agent in spenders], now=now)
    return TraceDetail(
        trace_id=trace_id,
        currencies=currencies,
        caps=[caps[(trace_id, agent.pk)] for agent in spenders],
    )


def _trace_currency(
    trace_id: str,
    currency: str,
    cells: list[tuple[date, str, uuid.UUID, str, int, int, datetime, datetime]],
) -> TraceCurrency:
    total = sum(cell[4] for cell in cells)
    vendor_cents: dict[str, int] = defaultdict(int)
    vendor_entries: dict[str, int] = defaultdict(int)
    agent_cents: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    agent_entries: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    for _, vendor, agent_id, agent_name, cents, count, _, _ in cells:
        vendor_cents[vendor] += cents
        vendor_entries[vendor] += count
        agent_cents[(agent_id, agent_name)] += cents
        agent_entries[(agent_id, agent_name)] += count
    ranked = sorted(vendor_cents, key=lambda vendor: (-vendor_cents[vendor], vendor))
    # The chart: every day from the first to the last of its activity, the last 60 at
    # most, and two weeks at least so that one day's bar is not the whole width.
    last_day = max(cell[0] for cell in cells)
    first_day = max(min(cell[0] for cell in cells), last_day - timedelta(TRACE_CHART_MAX_DAYS - 1))
    span = max((last_day - first_day).days + 1, TRACE_CHART_MIN_DAYS)
    days = [last_day - timedelta(days=back) for back in range(span)][::-1]
    shown = ranked if len(ranked) <= TRACE_CHART_VENDORS + 1 else ranked[:TRACE_CHART_VENDORS]
    layers = shown + ([TRACE_OTHER_VENDORS] if len(shown) < len(ranked) else [])
    rows = [DayRow(day=day, cents=[0] * len(layers)) for day in days]
    at = {row.day: row for row in rows}
    for day, vendor, _, _, cents, _, _, _ in cells:
        if day in at:
            at[day].cents[shown.index(vendor) if vendor in shown else len(shown)] += cents
    return TraceCurrency(
        trace_id=trace_id,
        currency=currency,
        cents=total,
        entries=sum(cell[5] for cell in cells),
        first_at=min(cell[6] for cell in cells),
        last_at=max(cell[7] for cell in cells),
        by_vendor=[
            TraceShare(
                label=vendor,
                cents=vendor_cents[vendor],
                entries=vendor_entries[vendor],
                share=_share(vendor_cents[vendor], total),
            )
            for vendor in ranked
        ],
        by_agent=[
            TraceShare(
                label=name,
                cents=agent_cents[(agent_id, name)],
                entries=agent_entries[(agent_id, name)],
                share=_share(agent_cents[(agent_id, name)], total),
                agent_id=agent_id,
            )
            for agent_id, name in sorted(
                agent_cents, key=lambda key: (-agent_cents[key], key[1], str(key[0]))
            )
        ],
        days=days,
        vendors=layers,
        rows=rows,
    )


@dataclass
class TraceEntriesPage:
    entries: list[LedgerEntry]
    next_before: int | None  # the id to go on before, when older entries exist


def trace_entries_page(
    *,
    agents: QuerySet[Agent],
    trace_id: str,
    before: int | None = None,
    size: int = TRACE_ENTRIES_PAGE_SIZE,
) -> TraceEntriesPage:
    """The trace's entries by the given agents, newest first, a keyset page (id < before)
    at a time; Http404 when none of those agents spent on it."""
    entries = LedgerEntry.objects.filter(agent__in=agents, trace_id=trace_id)
    page = entries.select_related("agent", "card", "vendor").order_by("-id")
    if before is not None:
        page = page.filter(id__lt=before)
    rows = list(page[: size + 1])
    if not rows and not entries.exists():
        raise Http404("No such trace.")
    more = len(rows) > size
    rows = rows[:size]
    return TraceEntriesPage(entries=rows, next_before=rows[-1].pk if more else None)


def agents_top_traces(
    *, agent_ids: Iterable[uuid.UUID], since: datetime, limit: int = 3
) -> dict[uuid.UUID, list[tuple[str, Money]]]:
    """Each agent's biggest traces since a time, for many agents in one grouped query
    (the approvals queue: the context of every pending request at once)."""
    rows = (
        LedgerEntry.objects.filter(agent_id__in=list(agent_ids), effective_at__gte=since)
        .exclude(trace_id="")
        .values_list("agent_id", "trace_id", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"))
        .order_by("agent_id", "-cents", "trace_id")
    )
    tops: dict[uuid.UUID, list[tuple[str, Money]]] = {}
    for agent_id, trace_id, currency, cents in rows:
        top = tops.setdefault(agent_id, [])
        if len(top) < limit and cents > 0:
            top.append((trace_id, Money(from_cents(int(cents)), currency)))
    return tops


def approvals_declined_charges(*, approval_ids: Iterable[int]) -> dict[int, Authorization]:
    """The declined authorization that raised each approval request (its first, when
    several declines were attached to one request): two queries, whatever the count."""
    first_ids = (
        Authorization.objects.filter(approval_request_id__in=list(approval_ids))
        .values("approval_request_id")
        .annotate(first=Min("id"))
        .values_list("first", flat=True)
    )
    return {
        authorization.approval_request_id: authorization
        for authorization in Authorization.objects.filter(id__in=list(first_ids))
    }


# The spend rollups (ledger.services.rollups) read with the ledger's entries after their
# mark. Each read is ONE statement (a UNION ALL of the rollup's rows and the tail's), so
# it takes the mark, the rollups and the tail from one snapshot: a fold that commits
# meanwhile is seen entirely or not at all. `principal_ids` None reads every team.


def _after_rollup_mark(entries: QuerySet[LedgerEntry]) -> QuerySet[LedgerEntry]:
    """The entries after the mark as the read's own statement sees it. The mark as read
    just before is a second, literal lower bound: the mark only moves forward, so it
    excludes nothing, and it lets the planner see that the tail is a few thousand rows
    (with the subquery alone it guesses a third of the ledger and scans it in parallel:
    bench/portal.py)."""
    marks = SpendRollupMark.objects.filter(pk=1)
    known = marks.values_list("last_entry_id", flat=True).first() or 0
    mark = marks.values("last_entry_id")[:1]
    return (
        entries.filter(id__gt=Coalesce(Subquery(mark), Value(0), output_field=BigIntegerField()))
        .filter(id__gt=known)
        .order_by()
    )


def _of_teams(rows: QuerySet, principal_ids: Iterable[int] | None, field: str) -> QuerySet:
    return rows if principal_ids is None else rows.filter(**{f"{field}__in": principal_ids})


def day_vendor_spend_read(
    *, principal_ids: Iterable[int] | None, first_day: date, last_day: date
) -> dict[tuple[str, date, str | None], int]:
    """Net cents per (cap currency, UTC day, vendor name or None) over the days from
    `first_day` to `last_day`, by `effective_at`, of the teams' agents."""
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    rolled = _of_teams(
        DaySpend.objects.filter(day__gte=first_day, day__lte=last_day),
        principal_ids,
        "principal_id",
    )
    tail = _of_teams(
        _after_rollup_mark(
            LedgerEntry.objects.filter(effective_at__gte=start, effective_at__lt=end)
        ),
        principal_ids,
        "agent__principal_id",
    )
    rows = (
        rolled.values_list("currency", "day", "vendor__name")
        .annotate(cents=Sum("cents"))
        .order_by()
        .union(
            tail.annotate(day=TruncDate("effective_at", tzinfo=UTC))
            .values_list("cap_amount_currency", "day", "vendor__name")
            .annotate(cents=Sum("cap_cents")),
            all=True,
        )
    )
    cells: dict[tuple[str, date, str | None], int] = defaultdict(int)
    for currency, day, vendor, cents in rows:
        cells[(currency, day, vendor)] += int(cents)
    return dict(cells)


def spend_totals_read(*, principal_ids: Iterable[int] | None) -> dict[str, tuple[int, int]]:
    """Every entry's net cents and count per cap currency, of the teams' agents."""
    rolled = _of_teams(DaySpend.objects.all(), principal_ids, "principal_id")
    tail = _of_teams(
        _after_rollup_mark(LedgerEntry.objects.all()), principal_ids, "agent__principal_id"
    )
    rows = (
        rolled.values_list("currency")
        .annotate(cents=Sum("cents"), entries=Sum("entries"))
        .order_by()
        .union(
            tail.values_list("cap_amount_currency").annotate(
                cents=Sum("cap_cents"), entries=Count("id")
            ),
            all=True,
        )
    )
    totals: dict[str, tuple[int, int]] = {}
    for currency, cents, entries in rows:
        held_cents, held_entries = totals.get(currency, (0, 0))
        totals[currency] = (held_cents + int(cents), held_entries + int(entries))
    return totals


@dataclass(frozen=True)
class TraceMonthSpent:
    trace_id: str
    currency: str
    cents: int


def trace_month_spend_read(
    *, principal_ids: Iterable[int] | None, now: datetime, prefix: str = ""
) -> list[TraceMonthSpent]:
    """Every trace's net spend this UTC calendar month per cap currency, by the teams'
    agents, largest first (then by trace id and currency)."""
    month_start, month_end = month_bounds(now, "UTC")
    rolled = _of_teams(
        TraceMonthSpend.objects.filter(month=month_start.date()), principal_ids, "principal_id"
    )
    tail = _of_teams(
        _after_rollup_mark(
            LedgerEntry.objects.filter(effective_at__gte=month_start, effective_at__lt=month_end)
        ).exclude(trace_id=""),
        principal_ids,
        "agent__principal_id",
    )
    if prefix:
        rolled = rolled.filter(trace_id__startswith=prefix)
        tail = tail.filter(trace_id__startswith=prefix)
    rows = (
        rolled.values_list("trace_id", "currency")
        .annotate(cents=Sum("cents"))
        .order_by()
        .union(
            tail.values_list("trace_id", "cap_amount_currency").annotate(cents=Sum("cap_cents")),
            all=True,
        )
    )
    merged: dict[tuple[str, str], int] = defaultdict(int)
    for trace_id, currency, cents in rows:
        merged[(trace_id, currency)] += int(cents)
    spent = [
        TraceMonthSpent(trace_id=trace, currency=currency, cents=cents)
        for (trace, currency), cents in merged.items()
    ]
    return sorted(spent, key=lambda row: (-row.cents, row.trace_id, row.currency))


@dataclass(frozen=True)
class TraceSpender:
    trace_id: str
    currency: str
    agent_id: uuid.UUID
    vendor: str | None
    last_entry_id: int


def trace_month_spenders_read(
    *, principal_ids: Iterable[int] | None, now: datetime, trace_ids: Iterable[str]
) -> list[TraceSpender]:
    """Who spent on the traces this UTC calendar month: each (trace, currency, agent,
    vendor) with an entry, and the id of its last entry, of the teams' agents."""
    month_start, month_end = month_bounds(now, "UTC")
    traces = sorted(set(trace_ids))
    rolled = _of_teams(
        TraceAgentMonthSpend.objects.filter(month=month_start.date(), trace_id__in=traces),
        principal_ids,
        "principal_id",
    )
    tail = _of_teams(
        _after_rollup_mark(
            LedgerEntry.objects.filter(
                effective_at__gte=month_start, effective_at__lt=month_end, trace_id__in=traces
            )
        ),
        principal_ids,
        "agent__principal_id",
    )
    rows = (
        rolled.values_list("trace_id", "currency", "agent_id", "vendor__name")
        .annotate(last=Max("last_entry_id"))
        .order_by()
        .union(
            tail.values_list(
                "trace_id", "cap_amount_currency", "agent_id", "vendor__name"
            ).annotate(last=Max("id")),
            all=True,
        )
    )
    return [TraceSpender(*row) for row in rows]
