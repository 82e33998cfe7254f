"""The policy what-if: the authorizations of a period replayed under a draft of the policy,
with the rules of policies/rules.py, against what actually happened. It writes nothing.

The replay walks the period in time order with the spend windows a decision reads: each
agent's rolling 24 hours, calendar month (in the draft's time zone) and holds of the last
hour, each card's and vendor's month, and each trace's lifetime across every agent. They
start from the ledger as it was (the entries before the period) and move with it: entries
that are not the replayed authorizations' (other policies' agents on a shared trace,
refunds without one) count as they happened. An authorization the draft approves counts
what its entries really came to when it was approved (holds less releases, captures, late
refunds), or its whole amount when it was declined in fact (what a hold would have taken).

Declines a cap does not decide (a frozen or closed card, a suspended agent, an MCC or
merchant lock, a currency with no rate) stay what they were: the draft changes caps only.
Approved bumps are not replayed: the draft is judged as written, before anyone asks."""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Q, Sum

from agentwallet.lib.money import cents_json, to_cents
from ledger.models import Authorization, Decision, EntryKind, LedgerEntry
from policies import rules
from policies.models import Policy
from wallets.models import Agent

# The declines a draft of the caps cannot change.
NOT_CAPS = {
    rules.CARD_NOT_FOUND,
    rules.CARD_CLOSED,
    rules.CARD_EXPIRED,
    rules.CARD_FROZEN,
    rules.AGENT_SUSPENDED,
    rules.MCC_NOT_ALLOWED,
    rules.MERCHANT_NOT_ALLOWED,
    rules.CURRENCY_NOT_SUPPORTED,
}
# The period replayed when none is given, and the longest one may ask for.
WHAT_IF_DAYS = 30
WHAT_IF_MAX_DAYS = 92
# A decision's widest look back: the rolling day, or the calendar month.
LOOK_BACK = timedelta(days=32)
# What the replay reads of an authorization (and of its agent and card).
REPLAYED_FIELDS = (
    "decision",
    "reason",
    "cap_amount",
    "cap_amount_currency",
    "agent",
    "agent__name",
    "card",
    "card__monthly_cap",
    "card__monthly_cap_currency",
    "vendor",
    "trace_id",
    "merchant_mcc",
    "merchant_network_id",
    "merchant_name",
    "decided_at",
)


@dataclass(frozen=True)
class Draft:
    """The policy's limits as the draft sets them, in cents of its cap currency."""

    daily: int
    monthly: int
    per_trace: int | None
    per_authorization: int | None
    velocity_per_hour: int | None
    time_zone: str
    vendor_caps: dict[int, int]  # vendor id -> monthly cap

    @classmethod
    def of(cls, policy: Policy, changes: dict[str, Any]) -> Draft:
        """`changes`: PolicyUpdateInputSerializer's validated data (plain amounts)."""

        def cents(name: str) -> int | None:
            if name in changes:
                return None if changes[name] is None else to_cents(changes[name])
            money = getattr(policy, name)
            return None if money is None else to_cents(money.amount)

        if "vendor_caps" in changes:
            # {vendor: amount}, as PolicyUpdateInputSerializer leaves them
            vendor_caps = {
                vendor.pk: to_cents(amount) for vendor, amount in changes["vendor_caps"].items()
            }
        else:
            vendor_caps = {
                cap.vendor_id: to_cents(cap.monthly_cap.amount) for cap in policy.vendor_caps.all()
            }
        return cls(
            daily=cents("daily_cap") or 0,
            monthly=cents("monthly_cap") or 0,
            per_trace=cents("per_trace_cap"),
            per_authorization=cents("per_authorization_cap"),
            velocity_per_hour=changes.get("velocity_per_hour", policy.velocity_per_hour),
            time_zone=changes.get("time_zone", policy.time_zone),
            vendor_caps=vendor_caps,
        )


@dataclass
class Outcome:
    declined: int = 0
    declined_cents: int = 0
    by_reason: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    traces: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    agents: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))

    def decline(self, auth: Authorization, reason: str) -> None:
        cents = _cap_cents(auth) or 0
        self.declined += 1
        self.declined_cents += cents
        self.by_reason[reason] += 1
        for key, groups in ((auth.trace_id, self.traces), (auth.agent.name, self.agents)):
            if key:
                groups[key][0] += 1
                groups[key][1] += cents

    def as_json(self, currency: str, *, detail: bool) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "declined": self.declined,
            "declined_amount": cents_json(self.declined_cents, currency),
            "by_reason": dict(sorted(self.by_reason.items())),
        }
        if detail:
            for name, groups in (("traces", self.traces), ("agents", self.agents)):
                answer[name] = [
                    {
                        "trace_id" if name == "traces" else "agent": key,
                        "declined": count,
                        "declined_amount": cents_json(cents, currency),
                    }
                    for key, (count, cents) in sorted(
                        groups.items(), key=lambda item: (-item[1][1], item[0])
                    )
                ]
        return answer


@dataclass
class WhatIf:
    currency: str
    since: datetime
    until: datetime
    authorizations: int
    actual: Outcome
    what_if: Outcome
    newly_declined: int
    newly_approved: int

    def as_json(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "authorizations": self.authorizations,
            "actual": self.actual.as_json(self.currency, detail=False),
            "what_if": self.what_if.as_json(self.currency, detail=True),
            "newly_declined": self.newly_declined,
            "newly_approved": self.newly_approved,
        }


def _cap_cents(auth: Authorization) -> int | None:
    return None if auth.cap_amount is None else to_cents(auth.cap_amount.amount)


class _Windows:
    """The spend a decision reads, moved forward one event at a time."""

    def __init__(self, draft: Draft) -> None:
        self.zone = ZoneInfo(draft.time_zone)
        self.day: dict[object, deque[tuple[datetime, int]]] = defaultdict(deque)
        self.day_sum: dict[object, int] = defaultdict(int)
        self.holds: dict[object, deque[datetime]] = defaultdict(deque)
        self.month: dict[tuple, int] = defaultdict(int)  # (scope, id, month) -> cents
        self.trace: dict[tuple[str, str], int] = defaultdict(int)

    def month_of(self, when: datetime) -> tuple[int, int]:
        local = when.astimezone(self.zone)
        return local.year, local.month

    def add(
        self,
        *,
        agent_id: object,
        card_id: object,
        vendor_id: object,
        trace: tuple,
        when: datetime,
        cents: int,
        hold: bool,
        ours: bool,
    ) -> None:
        if trace[1]:
            self.trace[trace] += cents
        if not ours:  # another policy's agent: only the shared trace sees it
            return
        self.day[agent_id].append((when, cents))
        self.day_sum[agent_id] += cents
        if hold:
            self.holds[agent_id].append(when)
        month = self.month_of(when)
        self.month[("agent", agent_id, month)] += cents
        if card_id:
            self.month[("card", card_id, month)] += cents
        if vendor_id:
            self.month[("vendor", (agent_id, vendor_id), month)] += cents

    def limits(self, draft: Draft, auth: Authorization, when: datetime) -> rules.Limits:
        agent_id = auth.agent_id
        day = self.day[agent_id]
        while day and day[0][0] <= when - timedelta(hours=24):
            self.day_sum[agent_id] -= day.popleft()[1]
        holds = self.holds[agent_id]
        while holds and holds[0] <= when - timedelta(hours=1):
            holds.popleft()
        month = self.month_of(when)
        card = auth.card
        card_cap = to_cents(card.monthly_cap.amount) if card and card.monthly_cap else None
        vendor_cap = draft.vendor_caps.get(auth.vendor_id) if auth.vendor_id else None
        trace = (auth.cap_amount_currency or "", auth.trace_id)
        return rules.Limits(
            per_authorization_cents=draft.per_authorization,
            velocity_per_hour=draft.velocity_per_hour,
            holds_last_hour=len(holds),
            card=rules.Limit(card_cap, self.month[("card", auth.card_id, month)]),
            vendor=rules.Limit(
                vendor_cap, self.month[("vendor", (agent_id, auth.vendor_id), month)]
            ),
            daily=rules.Limit(draft.daily, self.day_sum[agent_id]),
            monthly=rules.Limit(draft.monthly, self.month[("agent", agent_id, month)]),
            trace=rules.Limit(
                draft.per_trace if auth.trace_id else None, self.trace[trace] if trace[1] else 0
            ),
        )


def policy_what_if(
    *, policy: Policy, changes: dict[str, Any], since: datetime, until: datetime
) -> WhatIf:
    draft = Draft.of(policy, changes)
    attempts = Authorization.objects.filter(
        agent__policy=policy, decided_at__gte=since, decided_at__lt=until
    )
    replayed = list(
        attempts.select_related("agent", "card").only(*REPLAYED_FIELDS).order_by("decided_at", "id")
    )
    # The replayed ones and their traces as subqueries: tens of thousands of ids are
    # cheaper for the database to join than for Django to bind.
    replayed_ids = attempts.values("pk")
    traces = attempts.exclude(trace_id="").values("trace_id")
    net = dict(
        LedgerEntry.objects.filter(authorization__in=replayed_ids)
        .values_list("authorization_id")
        .annotate(cents=Sum("cap_cents"))
        .order_by()
    )
    start = since - LOOK_BACK
    windows = _Windows(draft)
    # Each shared trace's lifetime before the look back, then every entry that is not a
    # replayed authorization's, in time order with the replayed decisions.
    for currency, trace_id, cents in (
        LedgerEntry.objects.filter(trace_id__in=traces, effective_at__lt=start)
        .values_list("cap_amount_currency", "trace_id")
        .annotate(cents=Sum("cap_cents"))
        .order_by()
    ):
        windows.trace[(currency, trace_id)] += int(cents)
    policy_agent_ids = set(Agent.objects.filter(policy=policy).values_list("pk", flat=True))
    background = (
        LedgerEntry.objects.filter(effective_at__gte=start, effective_at__lt=until)
        .filter(Q(agent__policy=policy) | Q(trace_id__in=traces))
        .exclude(authorization__in=replayed_ids)
        .values_list(
            "effective_at",
            "agent_id",
            "card_id",
            "vendor_id",
            "cap_amount_currency",
            "trace_id",
            "cap_cents",
            "kind",
        )
        .order_by("effective_at", "id")
    )
    events: list[tuple[datetime, int, object]] = [
        (row[0], 0, row) for row in background.iterator(chunk_size=5000)
    ]
    events += [(auth.decided_at, 1, auth) for auth in replayed]
    events.sort(key=lambda event: (event[0], event[1]))

    actual, what_if = Outcome(), Outcome()
    newly_declined = newly_approved = 0
    for when, is_decision, item in events:
        if not is_decision:
            at, agent_id, card_id, vendor_id, currency, trace_id, cents, kind = item
            windows.add(
                agent_id=agent_id,
                card_id=card_id,
                vendor_id=vendor_id,
                trace=(currency, trace_id),
                when=at,
                cents=int(cents),
                hold=kind == EntryKind.HOLD,
                ours=agent_id in policy_agent_ids,
            )
            continue
        auth: Authorization = item
        was_approved = auth.decision == Decision.APPROVED
        if not was_approved:
            actual.decline(auth, auth.reason)
        decision = _decide(draft, windows, auth, when)
        if decision.approved:
            newly_approved += not was_approved
            windows.add(
                agent_id=auth.agent_id,
                card_id=auth.card_id,
                vendor_id=auth.vendor_id,
                trace=(auth.cap_amount_currency or "", auth.trace_id),
                when=when,
                cents=net.get(auth.pk, 0) if was_approved else (_cap_cents(auth) or 0),
                hold=True,
                ours=True,
            )
        else:
            newly_declined += was_approved
            what_if.decline(auth, decision.reason)
    return WhatIf(
        currency=policy.currency,
        since=since,
        until=until,
        authorizations=len(replayed),
        actual=actual,
        what_if=what_if,
        newly_declined=newly_declined,
        newly_approved=newly_approved,
    )


def _decide(
    draft: Draft, windows: _Windows, auth: Authorization, when: datetime
) -> rules.RuleDecision:
    if auth.decision == Decision.DECLINED and auth.reason in NOT_CAPS:
        return rules.RuleDecision(approved=False, reason=auth.reason)
    # What the card and the merchant were passed them then: only the caps are in question.
    card = rules.CardFacts(
        status="active",
        expires_at=None,
        exp_year=when.year + 1,
        exp_month=when.month,
        allowed_mccs=(auth.merchant_mcc,),
        merchant_lock=rules.MerchantLock(descriptor_lock=False, merchant_id_lock=False),
    )
    charge = rules.ChargeFacts(
        mcc=auth.merchant_mcc,
        merchant_network_id=auth.merchant_network_id,
        cap_cents=_cap_cents(auth),
        merchant_name=auth.merchant_name,
    )
    return rules.decide(
        card=card,
        agent_status="active",
        charge=charge,
        limits=windows.limits(draft, auth, when),
        now=when,
    )
