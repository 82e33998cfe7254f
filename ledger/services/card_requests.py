"""An agent asks for a single-use card for one vendor, up to an amount, for a while.

The card is issued only if its ceiling fits the agent's caps now (policies.rules.
decide_card_request); otherwise nothing is issued and, for a cap a lead can raise, an
approval request is opened as a declined charge's would be: once approved, the same
request issues the card. The card itself is a single-use card of the cards service:
locked to its vendor's merchants, capped at the ceiling, closed after its first approved
charge (and at the issuer) or at expiry.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.lib.money import from_cents, to_cents
from approvals.services import DeclineContext, approval_request_for_decline
from cards.services import NewCard, card_create_for_agent
from ledger.selectors import CapFigure, agent_budget
from policies import rules
from policies.models import Vendor
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
    currency = agent.policy.currency
    with transaction.atomic():
        agent = agent_lock(agent_id=agent.pk)  # one request at a time, as decisions
        budget = agent_budget(agent=agent, now=now)
        policy = agent.policy
        decision = rules.decide_card_request(
            ceiling_cents=ceiling,
            limits=rules.Limits(
                per_authorization_cents=None
                if policy.per_authorization_cap is None
                else to_cents(policy.per_authorization_cap.amount),
                daily=_limit(budget.daily),
                monthly=_limit(budget.monthly),
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
                trace_id=trace_id,
                now=now,
                context=DeclineContext(
                    vendor_name=f"{vendor.name} (single-use card requested)",
                    amount=Money(from_cents(ceiling), currency),
                    cap_amount=Money(from_cents(ceiling), currency),
                    trace_id=trace_id,
                    network_id="card-request",
                ),
            ).pk
    raise CardRequestDeclined(decision=decision, currency=currency, approval_id=approval_id)


def _limit(figure: CapFigure) -> rules.Limit:
    return rules.Limit(
        None if figure.cap is None else to_cents(figure.cap.amount),
        to_cents(figure.spent.amount),
        0 if figure.bump is None else to_cents(figure.bump.amount),
    )
