from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, QuerySet, Sum
from django.http import Http404
from djmoney.money import Money

from wallets.actors import Actor
from wallets.models import Agent, UsdcWallet, X402Payment, X402PaymentStatus


def agent_list_for_actor(*, actor: Actor) -> QuerySet[Agent]:
    agents = Agent.objects.select_related("principal", "policy").order_by("name", "id")
    if actor.is_staff:
        return agents
    return agents.filter(pk=actor.agent_id) if actor.agent_id else agents.none()


def agent_get_for_actor(*, actor: Actor, agent_id: uuid.UUID) -> Agent:
    """The agent, if the actor may see it; 404 alike for missing and foreign ids."""
    if not actor.can_act_on(agent_id):
        raise Http404("No such agent.")
    try:
        return Agent.objects.select_related("principal", "policy").get(pk=agent_id)
    except Agent.DoesNotExist as exc:
        raise Http404("No such agent.") from exc


def agent_get(*, agent_id: uuid.UUID) -> Agent:
    """An agent by id, with its principal and policy (for internal callers)."""
    return Agent.objects.select_related("principal", "policy").get(pk=agent_id)


def agent_lock(*, agent_id: uuid.UUID) -> Agent:
    """The agent, its row locked FOR UPDATE until the caller's transaction ends: the lock
    every decision and posting of the agent takes first (ledger.services)."""
    return Agent.objects.select_for_update(of=("self",)).select_related("policy").get(pk=agent_id)


def x402_payments_latest(*, agent: Agent, limit: int = 10) -> list[X402Payment]:
    """The agent's latest x402 payments, declines too (the agent's page)."""
    return list(
        X402Payment.objects.filter(agent=agent)
        .select_related("vendor")
        .order_by("-decided_at", "-id")[:limit]
    )


def wallet_of(*, agent: Agent) -> UsdcWallet | None:
    return UsdcWallet.objects.filter(agent=agent).first()


def approvals_declined_x402_payments(*, approval_ids: Iterable[int]) -> dict[int, X402Payment]:
    """The declined x402 payment that raised each approval request (its first), as
    ledger.selectors.approvals_declined_charges finds card charges."""
    payments = X402Payment.objects.filter(approval_request_id__in=list(approval_ids)).order_by(
        "decided_at", "id"
    )
    first: dict[int, X402Payment] = {}
    for payment in payments.select_related("vendor"):
        first.setdefault(payment.approval_request_id, payment)
    return first


@dataclass(frozen=True)
class X402Standing:
    """The agent's wallet as its budget shows it."""

    wallet_address: str | None
    wallet_status: str | None
    # Signed, not settled and not yet released: counted as spent, as whoever holds the
    # signatures can still settle them.
    unsettled: Money
    unsettled_payments: int


def x402_standing(*, agent: Agent) -> X402Standing:
    wallet = wallet_of(agent=agent)
    currency = agent.policy.currency
    open_payments = X402Payment.objects.filter(
        agent=agent, status__in=[X402PaymentStatus.SIGNED, X402PaymentStatus.FAILED]
    ).aggregate(total=Sum("cap_amount"), count=Count("id"))
    return X402Standing(
        wallet_address=wallet.address if wallet else None,
        wallet_status=wallet.status if wallet else None,
        unsettled=Money(open_payments["total"] or Decimal("0.00"), currency),
        unsettled_payments=open_payments["count"],
    )
