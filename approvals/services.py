"""Writes for approval requests."""

from __future__ import annotations

from datetime import datetime

from djmoney.money import Money

from agentwallet.lib.money import from_cents
from approvals.models import ApprovalRequest, ApprovalScope, ApprovalStatus
from policies import rules
from policies.models import Vendor
from wallets.models import Agent

_SCOPES = {
    rules.SCOPE_CARD: ApprovalScope.VENDOR,
    rules.SCOPE_VENDOR: ApprovalScope.VENDOR,
    rules.SCOPE_DAILY: ApprovalScope.DAILY,
    rules.SCOPE_MONTHLY: ApprovalScope.MONTHLY,
    rules.SCOPE_TRACE: ApprovalScope.TRACE,
}


def scope_key_for(*, rule_scope: str, card_id: object, vendor: Vendor | None, trace_id: str) -> str:
    if rule_scope == rules.SCOPE_CARD:
        return f"card:{card_id}"
    if rule_scope == rules.SCOPE_VENDOR and vendor is not None:
        return f"vendor:{vendor.slug}"
    if rule_scope == rules.SCOPE_TRACE:
        return f"trace:{trace_id}"
    return rule_scope


def approval_request_for_decline(
    *,
    agent: Agent,
    decision: rules.RuleDecision,
    currency: str,
    requested_cents: int,
    card_id: object,
    vendor: Vendor | None,
    trace_id: str,
    now: datetime,
) -> ApprovalRequest:
    """The open request for this cap, or a new one. Runs inside the decision's
    transaction, under the agent's lock, so two declines cannot both create one."""
    scope_key = scope_key_for(
        rule_scope=decision.scope, card_id=card_id, vendor=vendor, trace_id=trace_id
    )
    existing = ApprovalRequest.objects.filter(
        agent=agent, scope_key=scope_key, status=ApprovalStatus.PENDING
    ).first()
    if existing is not None:
        existing.declines_attached += 1
        existing.spent = Money(from_cents(decision.spent_cents or 0), currency)
        existing.save(update_fields=["declines_attached", "spent", "updated_at"])
        return existing
    return ApprovalRequest.objects.create(
        agent=agent,
        scope=_SCOPES[decision.scope],
        scope_key=scope_key,
        vendor=vendor if decision.scope in (rules.SCOPE_CARD, rules.SCOPE_VENDOR) else None,
        trace_id=trace_id if decision.scope == rules.SCOPE_TRACE else "",
        cap_limit=Money(from_cents(decision.limit_cents or 0), currency),
        spent=Money(from_cents(decision.spent_cents or 0), currency),
        requested_amount=Money(from_cents(requested_cents), currency),
        reason=f"Declined: {decision.reason}",
        created_at=now,
    )
