"""What the portal shows, read for one signed-in user's scope.

A lead sees the agents of the teams (principals) they lead; Finance, viewers and
superusers see the whole organisation. Spend comes from the spend counters (one grouped
query per window) and, for what no counter keeps (days by vendor, a month by trace),
from the spend rollups and the ledger's tail after them; never from summing the ledger
per request."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet, Sum

from agentwallet.lib.money import from_cents
from agentwallet.lib.timewindows import HOUR, floor_to
from agentwallet.models import AuditEvent
from agentwallet.portal.charts import DayRow, day_rows_svg, layer_totals
from agentwallet.portal.htmx import keyset_id
from approvals.models import ApprovalRequest, ApprovalStatus, OutboxMessage, OutboxStatus
from cards.models import Card, CardStatus
from ledger import sql
from ledger.models import Authorization, CounterGrain, Decision, Runaway, SpendCounter
from ledger.selectors import day_vendor_spend_read, trace_month_spend_read
from policies.models import Policy, PolicyVendorCap, Vendor
from wallets.models import Agent, TeamLead

ROLE_FINANCE = "Finance"
ROLE_LEAD = "Engineering lead"
ROLE_VIEWER = "Viewer"
PORTAL_ROLES = (ROLE_FINANCE, ROLE_LEAD, ROLE_VIEWER)


@dataclass(frozen=True)
class PortalScope:
    """Whose agents a portal user sees: all of them, or those of the teams they lead."""

    everything: bool
    principal_ids: frozenset[int] = frozenset()
    roles: frozenset[str] = frozenset()

    def agents(self) -> QuerySet[Agent]:
        agents = Agent.objects.all()
        return agents if self.everything else agents.filter(principal_id__in=self.principal_ids)

    @property
    def team_ids(self) -> frozenset[int] | None:
        """The teams (principals) in scope for reads keyed by team; None for all."""
        return None if self.everything else self.principal_ids

    def limit(self, rows: QuerySet, agent: str = "agent") -> QuerySet:
        """`rows` (of a model with an agent) of the agents in scope. Unfiltered for the
        whole organisation: an IN over every agent changes no row and only slows the
        plan (measured on a million entries: bench/portal.py)."""
        if self.everything:
            return rows
        return rows.filter(**{f"{agent}__principal_id__in": self.principal_ids})


def portal_scope(*, user: AbstractBaseUser | AnonymousUser) -> PortalScope | None:
    """The user's scope, or None when they hold no portal role (answered 403)."""
    if not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return PortalScope(everything=True, roles=frozenset(PORTAL_ROLES))
    roles = frozenset(user.groups.filter(name__in=PORTAL_ROLES).values_list("name", flat=True))
    if not roles:
        return None
    if roles & {ROLE_FINANCE, ROLE_VIEWER}:
        return PortalScope(everything=True, roles=roles)
    led = TeamLead.objects.filter(user=user).values_list("principal_id", flat=True)
    return PortalScope(everything=False, principal_ids=frozenset(led), roles=roles)


def portal_scope_required(*, user: AbstractBaseUser | AnonymousUser) -> PortalScope:
    """The user's scope for a portal page or action; PermissionDenied (403) without a role."""
    scope = portal_scope(user=user)
    if scope is None:
        raise PermissionDenied("No portal role: ask an administrator for one.")
    return scope


@dataclass
class CurrencySpend:
    """Spend against caps in one cap currency (policies may differ in currency)."""

    currency: str
    agents: int = 0
    day_spent: Decimal = Decimal(0)
    day_cap: Decimal = Decimal(0)
    month_spent: Decimal = Decimal(0)
    month_cap: Decimal = Decimal(0)

    @property
    def day_share(self) -> int:
        return _percent(self.day_spent, self.day_cap)

    @property
    def month_share(self) -> int:
        return _percent(self.month_spent, self.month_cap)


@dataclass
class AgentSpend:
    agent: Agent
    day_spent: Decimal
    month_spent: Decimal

    @property
    def day_share(self) -> int:
        return _percent(self.day_spent, self.agent.policy.daily_cap.amount)


CHART_DAYS = 30
CHART_VENDORS = 6  # the rest stack as one "Other vendors" layer
NO_VENDOR = "No vendor"
OTHER_VENDORS = "Other vendors"
TOP_TRACES = 10


@dataclass
class DailySpend:
    """Net spend per UTC day and vendor over the last 30 days, in one cap currency."""

    currency: str
    days: list[date]
    vendors: list[str]  # by 30-day spend, largest first
    rows: list[DayRow]  # one per day, oldest first

    @property
    def rows_with_spend(self) -> list[DayRow]:
        return [row for row in self.rows if any(row.cents)]

    @property
    def vendor_totals(self) -> list[Decimal]:
        return layer_totals(self.rows, self.vendors)

    @property
    def total(self) -> Decimal:
        return from_cents(sum(sum(row.cents) for row in self.rows))

    @property
    def svg(self) -> str:
        """Escaped markup (charts.py): safe to render as is."""
        return day_rows_svg(
            title=f"Spend per day by vendor, last {len(self.days)} days ({self.currency})",
            days=self.days,
            layers=self.vendors,
            rows=self.rows,
            currency=self.currency,
            chart_id=f"daily-{self.currency}",
        )


@dataclass
class TraceSpend:
    trace_id: str
    spent: Decimal


@dataclass
class CurrencyTraces:
    currency: str
    traces: list[TraceSpend]


@dataclass
class Dashboard:
    as_of: datetime
    day_from: datetime
    spend: list[CurrencySpend]
    agents: list[AgentSpend]
    pending_approvals: list[ApprovalRequest]
    recent_declines: list[Authorization]
    frozen_cards: list[Card]
    undelivered: list[OutboxMessage] = field(default_factory=list)
    runaways: list[Runaway] = field(default_factory=list)


def _percent(part: Decimal, whole: Decimal) -> int:
    return 0 if not whole else min(int(part * 100 / whole), 100)


def daily_spend_read(*, scope: PortalScope, now: datetime) -> list[DailySpend]:
    """The last 30 UTC days (today included) by vendor, one chart per cap currency,
    from the day rollup and the ledger's tail after it (one statement): the counters
    cannot answer it, since vendor counters are by month only and the agents' hour
    buckets are pruned after 26 hours (ledger.services.counters)."""
    days = [now.astimezone(UTC).date() - timedelta(days=back) for back in range(CHART_DAYS)][::-1]
    spent_cells = day_vendor_spend_read(
        principal_ids=scope.team_ids, first_day=days[0], last_day=days[-1]
    )
    cells: dict[str, dict[tuple[date, str], int]] = defaultdict(lambda: defaultdict(int))
    for (currency, day, vendor), cents in spent_cells.items():
        cells[currency][(day, vendor or NO_VENDOR)] += cents
    charts = []
    for currency in sorted(cells):
        by_cell = cells[currency]
        spent: dict[str, int] = defaultdict(int)
        for (_, vendor), cents in by_cell.items():
            spent[vendor] += cents
        if not any(by_cell.values()):
            continue
        ranked = sorted(spent, key=lambda vendor: (-spent[vendor], vendor))
        shown = ranked if len(ranked) <= CHART_VENDORS + 1 else ranked[:CHART_VENDORS]
        column = {
            vendor: shown.index(vendor) if vendor in shown else len(shown) for vendor in ranked
        }
        vendors = shown + ([OTHER_VENDORS] if len(shown) < len(ranked) else [])
        rows = [DayRow(day=day, cents=[0] * len(vendors)) for day in days]
        at = {row.day: row for row in rows}
        for (day, vendor), cents in by_cell.items():
            at[day].cents[column[vendor]] += cents
        charts.append(DailySpend(currency=currency, days=days, vendors=vendors, rows=rows))
    return charts


def top_traces_month_read(*, scope: PortalScope, now: datetime) -> list[CurrencyTraces]:
    """The ten traces that spent most this calendar month (UTC, as on /traces/), per cap
    currency, by the agents in scope (the trace-month rollup and the ledger's tail)."""
    by_currency: dict[str, list[TraceSpend]] = defaultdict(list)
    for row in trace_month_spend_read(principal_ids=scope.team_ids, now=now):
        if row.cents > 0 and len(by_currency[row.currency]) < TOP_TRACES:
            by_currency[row.currency].append(
                TraceSpend(trace_id=row.trace_id, spent=from_cents(row.cents))
            )
    return [CurrencyTraces(currency=code, traces=by_currency[code]) for code in sorted(by_currency)]


class _MonthStarts:
    """The start (UTC) of the current calendar month in each policy's time zone."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._by_zone: dict[str, datetime] = {}

    def of(self, policy: Policy) -> datetime:
        zone = policy.time_zone
        if zone not in self._by_zone:
            self._by_zone[zone] = sql.month_start_utc(self.now, zone)
        return self._by_zone[zone]

    def current(self, policies: Iterable[Policy]) -> set[datetime]:
        """This month's starts in the policies' zones. A month counter starting at one
        of them is its agent's current month: an agent's buckets start at the month
        starts of its policy's zone (or of its previous zone until its counters are
        recut, a minute after a change), and two zones' starts lie hours apart, not a
        month. So the counters are read without their starts (parsing thousands of
        timestamps was most of the dashboard's time: bench/portal.py)."""
        return {self.of(policy) for policy in policies}


@dataclass
class VendorSpend:
    vendor: str
    currency: str
    spent: Decimal
    cap: Decimal | None  # the sum of the policies' vendor caps over the agents in scope

    @property
    def share(self) -> int:
        return _percent(self.spent, self.cap) if self.cap else 0


def vendor_month_read(
    *, policy_of: Mapping[str, Policy], month_starts: _MonthStarts
) -> list[VendorSpend]:
    """Spend per vendor this month against the vendor caps, from the vendor month
    counters (one query) and the policies' vendor caps (one query): a vendor's cap is the
    sum of the monthly vendor caps of every agent in scope (`policy_of`: each agent's
    scope, `sql.agent_scope`, to its policy) whose policy caps it."""
    caps_by_policy: dict[int, dict[int, Decimal]] = defaultdict(dict)
    for policy_id, vendor_id, amount in PolicyVendorCap.objects.filter(
        policy_id__in={policy.pk for policy in policy_of.values()}
    ).values_list("policy_id", "vendor_id", "monthly_cap"):
        caps_by_policy[policy_id][vendor_id] = amount
    spent: dict[tuple[int, str], int] = defaultdict(int)
    prefix = "vendor:"
    for scope_key, cents in SpendCounter.objects.filter(
        grain=CounterGrain.MONTH,
        scope__startswith=prefix,
        bucket_start__in=month_starts.current(policy_of.values()),
    ).values_list("scope", "cents"):
        agent_id, _, vendor_id = scope_key[len(prefix) :].partition(":")
        policy = policy_of.get(sql.agent_scope(agent_id))
        if policy is not None:
            spent[(int(vendor_id), policy.currency)] += cents
    capped: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for policy in policy_of.values():
        for vendor_id, amount in caps_by_policy.get(policy.pk, {}).items():
            capped[(vendor_id, policy.currency)] += amount
    names = dict(
        Vendor.objects.filter(pk__in={key[0] for key in (*spent, *capped)}).values_list(
            "pk", "name"
        )
    )
    rows = [
        VendorSpend(
            vendor=names.get(vendor_id, NO_VENDOR),
            currency=currency,
            spent=from_cents(max(spent.get((vendor_id, currency), 0), 0)),
            cap=capped.get((vendor_id, currency)),
        )
        for vendor_id, currency in {*spent, *capped}
    ]
    return sorted((row for row in rows if row.spent), key=lambda row: (-row.spent, row.vendor))


def _agents_in_scope(
    scope: PortalScope,
) -> tuple[list[tuple[uuid.UUID, str, int]], dict[int, Policy], dict[str, Policy]]:
    """The agents in scope as (id, name, policy id) only (an organisation has thousands),
    their policies by id, and each agent's counter scope to its policy."""
    in_scope = list(scope.agents().values_list("pk", "name", "policy_id"))
    policies = {
        policy.pk: policy for policy in Policy.objects.filter(pk__in={p for *_, p in in_scope})
    }
    by_scope = {sql.agent_scope(pk): policies[policy_id] for pk, _, policy_id in in_scope}
    return in_scope, policies, by_scope


def dashboard_vendors_read(*, scope: PortalScope, now: datetime) -> list[VendorSpend]:
    """The dashboard's spend by vendor this month against the vendor caps."""
    _, _, by_scope = _agents_in_scope(scope)
    return vendor_month_read(policy_of=by_scope, month_starts=_MonthStarts(now))


def dashboard_read(*, scope: PortalScope, now: datetime) -> Dashboard:
    """The dashboard's figures but its three slower panels (the 30-day chart, the vendors
    and the top traces), which the page loads right after (DASHBOARD_PANELS)."""
    # Only the ten agents that spent most today are shown (loaded whole at the end).
    in_scope, policies, by_scope = _agents_in_scope(scope)
    # The last 24 hours by the hour (the counters' grain: the window starts at the top
    # of the hour 23 hours ago); an agent's own page reads its exact rolling window.
    day_from = floor_to(now, HOUR) - timedelta(hours=23)
    day = dict(
        SpendCounter.objects.filter(
            grain=CounterGrain.HOUR, bucket_start__gte=day_from, scope__in=by_scope
        )
        .values_list("scope")
        .annotate(total=Sum("cents"))
    )
    # Each agent's current calendar-month bucket (cut in its own time zone): the bucket
    # must start at this month's start, or last month's spend shows until the first charge.
    month_starts = _MonthStarts(now)
    month = dict(
        SpendCounter.objects.filter(
            grain=CounterGrain.MONTH,
            bucket_start__in=month_starts.current(policies.values()),
            scope__in=by_scope,
        ).values_list("scope", "cents")
    )
    totals: dict[str, CurrencySpend] = defaultdict(lambda: CurrencySpend(currency=""))
    rows = []
    for pk, name, policy_id in in_scope:
        policy, scope_key = policies[policy_id], sql.agent_scope(pk)
        total = totals[policy.currency]
        total.currency = policy.currency
        total.agents += 1
        spent_day = from_cents(max(day.get(scope_key, 0), 0))
        spent_month = from_cents(max(month.get(scope_key, 0), 0))
        total.day_spent += spent_day
        total.month_spent += spent_month
        total.day_cap += policy.daily_cap.amount
        total.month_cap += policy.monthly_cap.amount
        rows.append((spent_day, name, spent_month, pk))
    rows = sorted(rows, key=lambda row: (-row[0], row[1]))[:10]
    top = scope.agents().select_related("policy").in_bulk([pk for *_, pk in rows])
    agent_rows = [
        AgentSpend(agent=top[pk], day_spent=spent_day, month_spent=spent_month)
        for spent_day, _, spent_month, pk in rows
    ]
    visible = scope.agents()
    return Dashboard(
        as_of=now,
        day_from=day_from,
        spend=sorted(totals.values(), key=lambda total: total.currency),
        agents=agent_rows,
        pending_approvals=list(
            scope.limit(ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING))
            .select_related("agent")
            .order_by("-created_at")[:10]
        ),
        recent_declines=list(
            scope.limit(Authorization.objects.filter(decision=Decision.DECLINED))
            .select_related("agent", "vendor")
            .order_by("-decided_at")[:10]
        ),
        frozen_cards=list(
            scope.limit(Card.objects.filter(status=CardStatus.FROZEN))
            .select_related("agent", "vendor")
            .order_by("agent__name")[:20]
        ),
        undelivered=list(
            OutboxMessage.objects.filter(
                status__in=[OutboxStatus.FAILED, OutboxStatus.HELD], agent__in=visible
            ).order_by("-id")[:10]
        ),
        runaways=list(
            scope.limit(Runaway.objects.filter(detected_at__gte=now - timedelta(days=1)), "agents")
            .distinct()
            .prefetch_related("agents")
            .order_by("-detected_at", "-id")[:10]
        ),
    )


# The dashboard's panels loaded after the page (hx-trigger="load"), each its own URL
# (/dashboard/<panel>/): the page's first answer carries the counters' figures and the
# lists; these three read the rollups and the vendor counters, and together cost as
# much again (bench/portal.py measures each). Panel -> (its read, its context name).
DASHBOARD_PANELS: dict[str, tuple[Callable[..., object], str]] = {
    "daily": (daily_spend_read, "daily_spend"),
    "vendors": (dashboard_vendors_read, "vendors"),
    "traces": (top_traces_month_read, "top_traces"),
}


AUDIT_PAGE_SIZE = 50


def audit_events(*, scope: PortalScope) -> QuerySet[AuditEvent]:
    """The audit rows a user may read: everything for organisation-wide roles; for a
    lead, the rows about their teams' agents and the organisation-wide ones (policies,
    vendors), which bind their agents too."""
    events = AuditEvent.objects.select_related("agent")
    if scope.everything:
        return events
    return events.filter(Q(agent__principal_id__in=scope.principal_ids) | Q(agent__isnull=True))


def keyset_page(rows: QuerySet, *, before: str, size: int) -> tuple[list, int | None]:
    """Newest first by id: one page below `before` and the id to ask for next (or None).
    The query is the same on every page, whatever the depth."""
    before_id = keyset_id(before)
    if before_id is not None:
        rows = rows.filter(id__lt=before_id)
    page = list(rows.order_by("-id")[: size + 1])
    more = len(page) > size
    page = page[:size]
    return page, (page[-1].pk if more and page else None)
