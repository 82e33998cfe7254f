"""An agent asks for a single-use card for one vendor, up to an amount, for a while.

The card is issued only if one charge of its ceiling would fit the agent's limits now
(policies.rules.decide_card_request: the one-charge limits, then the vendor's month,
the rolling 24 hours, the month and the trace, bumps included). Otherwise nothing is
issued and, for a cap a lead can raise, an approval request is opened as a declined
charge's would be: once approved, the same request issues the card. The card itself is
a single-use card of the cards service: locked to its vendor's merchants, capped at the
ceiling, closed after its first approved charge (and at the issuer) or at expiry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.lib.money import from_cents, to_cents
from approvals.services import DeclineContext, approval_request_for_decline
from cards.services import NewCard, card_create_for_agent
from ledger import sql
from ledger.selectors import agent_month_time_zone
from ledger.services.authorization import bumps_in_force, spend_limits
from policies import rules
from policies.models import Vendor
from policies.selectors import policy_vendor_caps
from wallets.actors import Actor
from wallets.models import Agent
from wallets.selectors import agent_lock


class CardRequestDeclined(Exception):
    """The ceiling does not fit the caps: which one, and the approval request opened."""

    def __init__(
        self, *, decision: rules.RuleDecision, currency: str, approval_id: int | None
    ) -> None:
        super().__init__(decision.reason)
        self.decision = decision
        self.currency = currency
        self.approval_id = approval_id


@dataclass(frozen=True)
class _RequestFacts:
    """What the shared cap limits need (authorization.CapFacts), for one vendor."""

    agent_id: uuid.UUID
    bumps_valid_until: datetime | None
    vendor_id: int | None
    vendor_slug: str
    vendor_cap_cents: int | None
    daily_cap_cents: int
    monthly_cap_cents: int
    per_trace_cap_cents: int | None


def single_use_card_request(
    *,
    agent: Agent,
    vendor: Vendor,
    max_amount: Decimal,
    expires_in_seconds: int,
    trace_id: str,
    actor: Actor,
) -> NewCard:
    now = timezone.now()
    ceiling = to_cents(max_amount)
    with transaction.atomic():
        agent = agent_lock(agent_id=agent.pk)  # one request at a time, as decisions
        policy = agent.policy
        currency = policy.currency
        vendor_cap = policy_vendor_caps(policy=policy).get(vendor.pk)
        facts = _RequestFacts(
            agent_id=agent.pk,
            bumps_valid_until=agent.bumps_valid_until,
            vendor_id=vendor.pk,
            vendor_slug=vendor.slug,
            vendor_cap_cents=_cents(vendor_cap),
            daily_cap_cents=to_cents(policy.daily_cap.amount),
            monthly_cap_cents=to_cents(policy.monthly_cap.amount),
            per_trace_cap_cents=_cents(policy.per_trace_cap),
        )
        # The card's charges count against its trace, or the agent's at the time.
        trace = trace_id or agent.active_trace_at(now)
        capped_trace = trace if trace and facts.per_trace_cap_cents is not None else ""
        with connection.cursor() as cursor:
            spend = sql.spend_read(
                cursor,
                agent_id=agent.pk,
                currency=currency,
                month_time_zone=agent_month_time_zone(agent=agent),
                now=now,
                vendor_ids=[vendor.pk],
                trace_ids=[capped_trace] if capped_trace else [],
            )
        decision = rules.decide_card_request(
            ceiling_cents=ceiling,
            limits=rules.Limits(
                unverified_charge_cents=None
                if agent.principal.email_verified_at
                else _cents(policy.unverified_charge_limit),
                per_authorization_cents=_cents(policy.per_authorization_cap),
                **spend_limits(facts, spend, bumps_in_force(facts, now), capped_trace),
            ),
        )
        if decision.approved:
            return card_create_for_agent(
                agent=agent,
                vendor=vendor,
                actor=actor,
                monthly_cap=max_amount,
                trace_id=trace_id,
                expires_in_seconds=expires_in_seconds,
                single_use=True,
            )
        approval_id = None
        if decision.is_cap_decline:
            approval_id = approval_request_for_decline(
                agent_id=agent.pk,
                decision=decision,
                currency=currency,
                requested_cents=ceiling,
                card_id="",
                vendor_id=vendor.pk,
                vendor_slug=vendor.slug,
                trace_id=capped_trace,
                now=now,
                context=DeclineContext(
                    vendor_name=f"{vendor.name} (single-use card requested)",
                    amount=Money(from_cents(ceiling), currency),
                    cap_amount=Money(from_cents(ceiling), currency),
                    trace_id=trace,
                    network_id="card-request",
                ),
            ).pk
    raise CardRequestDeclined(decision=decision, currency=currency, approval_id=approval_id)


def _cents(money: Money | None) -> int | None:
    return None if money is None else to_cents(money.amount)
