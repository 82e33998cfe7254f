"""What the portal shows, read for one signed-in user's scope.

A lead sees the agents of the teams (principals) they lead; Finance, viewers and
superusers see the whole organisation. Spend comes from the spend counters (one grouped
query per window), never from summing the ledger per request."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet, Sum

from agentwallet.lib.money import from_cents
from agentwallet.lib.timewindows import HOUR, floor_to
from approvals.models import ApprovalRequest, ApprovalStatus, OutboxMessage, OutboxStatus
from cards.models import Card, CardStatus
from ledger import sql
from ledger.models import Authorization, CounterGrain, Decision, SpendCounter
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


def _percent(part: Decimal, whole: Decimal) -> int:
    return 0 if not whole else min(int(part * 100 / whole), 100)


def dashboard_read(*, scope: PortalScope, now: datetime) -> Dashboard:
    agents = list(scope.agents().select_related("policy").order_by("name"))
    by_scope = {sql.agent_scope(agent.pk): agent for agent in agents}
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
    # Each agent's current calendar-month bucket (cut in its own time zone).
    month: dict[str, int] = {}
    for scope_key, cents in (
        SpendCounter.objects.filter(
            grain=CounterGrain.MONTH,
            bucket_start__lte=now,
            bucket_start__gt=now - timedelta(days=32),
            scope__in=by_scope,
        )
        .order_by("scope", "bucket_start")
        .values_list("scope", "cents")
    ):
        month[scope_key] = cents  # ordered by start: the last one is the current month
    totals: dict[str, CurrencySpend] = defaultdict(lambda: CurrencySpend(currency=""))
    rows = []
    for scope_key, agent in by_scope.items():
        policy = agent.policy
        total = totals[policy.currency]
        total.currency = policy.currency
        total.agents += 1
        spent_day = from_cents(max(day.get(scope_key, 0), 0))
        spent_month = from_cents(max(month.get(scope_key, 0), 0))
        total.day_spent += spent_day
        total.month_spent += spent_month
        total.day_cap += policy.daily_cap.amount
        total.month_cap += policy.monthly_cap.amount
        rows.append(AgentSpend(agent=agent, day_spent=spent_day, month_spent=spent_month))
    rows.sort(key=lambda row: row.day_spent, reverse=True)
    visible = scope.agents()
    return Dashboard(
        as_of=now,
        day_from=day_from,
        spend=sorted(totals.values(), key=lambda total: total.currency),
        agents=rows[:10],
        pending_approvals=list(
            ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING, agent__in=visible)
            .select_related("agent")
            .order_by("-created_at")[:10]
        ),
        recent_declines=list(
            Authorization.objects.filter(decision=Decision.DECLINED, agent__in=visible)
            .select_related("agent", "vendor")
            .order_by("-decided_at")[:10]
        ),
        frozen_cards=list(
            Card.objects.filter(status=CardStatus.FROZEN, agent__in=visible)
            .select_related("agent", "vendor")
            .order_by("agent__name")[:20]
        ),
        undelivered=list(
            OutboxMessage.objects.filter(
                status__in=[OutboxStatus.FAILED, OutboxStatus.HELD], agent__in=visible
            ).order_by("-id")[:10]
        ),
    )
