"""Writes for approval requests, cap bumps and the Slack outbox."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.audit import audit_record
from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import from_cents, money_json
from agentwallet.lib.timewindows import day_end
from agentwallet.models import AuditAction
from approvals.models import (
    ApprovalOrigin,
    ApprovalRequest,
    ApprovalScope,
    ApprovalStatus,
    CapBump,
    DecisionChannel,
    OutboxKind,
)
from approvals.outbox import outbox_add
from cards.services import card_controls_push
from policies import rules
from policies.models import Policy, Vendor
from wallets.models import Agent
from wallets.selectors import agent_lock
from wallets.services import agent_bumps_valid_until_extend

# A pending request nobody answered lapses after this long.
REQUEST_LIFETIME = timedelta(hours=24)

_SCOPES = {
    rules.SCOPE_CARD: ApprovalScope.VENDOR,
    rules.SCOPE_VENDOR: ApprovalScope.VENDOR,
    rules.SCOPE_DAILY: ApprovalScope.DAILY,
    rules.SCOPE_MONTHLY: ApprovalScope.MONTHLY,
    rules.SCOPE_TRACE: ApprovalScope.TRACE,
}


def channel_for(policy: Policy) -> str:
    return policy.approvals_channel or settings.SLACK_APPROVALS_CHANNEL


@dataclass(frozen=True)
class DeclineContext:
    """What a lead needs to decide, captured when the cap stopped a charge."""

    vendor_name: str
    amount: Money  # what the merchant asked, in its currency
    cap_amount: Money  # the same in the cap currency
    trace_id: str
    network_id: str


def approval_request_for_decline(
    *,
    agent_id: object,
    decision: rules.RuleDecision,
    currency: str,
    requested_cents: int,
    card_id: object,
    vendor_id: int,
    vendor_slug: str,
    trace_id: str,
    now: datetime,
    context: DeclineContext | None = None,
) -> ApprovalRequest:
    """The open request for this cap, or a new one (queued for Slack). Runs inside the
    decision's transaction, under the agent's lock, so two declines cannot both create one.
    Attaching to an open request is one read and one update; only a new one loads more.
    """
    scope_key = rules.cap_key(
        decision.scope, card_id=card_id, vendor_slug=vendor_slug, trace_id=trace_id
    )
    existing = ApprovalRequest.objects.filter(
        agent_id=agent_id, scope_key=scope_key, status=ApprovalStatus.PENDING
    ).first()
    if existing is not None:
        existing.declines_attached += 1
        existing.spent = Money(from_cents(decision.spent_cents or 0), currency)
        existing.save(update_fields=["declines_attached", "spent", "updated_at"])
        return existing
    agent = Agent.objects.select_related("policy", "principal").get(pk=agent_id)
    request = ApprovalRequest.objects.create(
        agent=agent,
        scope=_SCOPES[decision.scope],
        scope_key=scope_key,
        vendor_id=vendor_id if decision.scope in (rules.SCOPE_CARD, rules.SCOPE_VENDOR) else None,
        trace_id=trace_id if decision.scope == rules.SCOPE_TRACE else "",
        cap_limit=Money(from_cents(decision.limit_cents or 0), currency),
        spent=Money(from_cents(decision.spent_cents or 0), currency),
        requested_amount=Money(from_cents(requested_cents), currency),
        reason=f"Declined: {decision.reason}",
        expires_at=now + REQUEST_LIFETIME,
        created_at=now,
    )
    payload = request_payload(request)
    if context is not None:
        payload["charge"] = {
            "vendor": context.vendor_name,
            "amount": money_json(context.amount),
            "cap_amount": money_json(context.cap_amount),
            "trace_id": context.trace_id,
            "network_id": context.network_id,
        }
    outbox_add(
        kind=OutboxKind.APPROVAL_REQUEST,
        key=f"approval:{request.pk}:request",
        payload=payload,
        channel=channel_for(agent.policy),
        now=now,
        agent=agent,
        approval=request,
        fresh=True,
    )
    return request


def request_payload(request: ApprovalRequest) -> dict[str, Any]:
    """The facts shown on the Slack card (kept with the outbox row; its top traces are
    looked up when it is sent, not under the decision's lock)."""
    agent = request.agent
    principal = agent.principal
    return {
        "approval_id": request.pk,
        "agent": {"id": str(agent.pk), "name": agent.name},
        "principal": {"email": principal.email, "slack_user_id": principal.slack_user_id},
        "scope": request.scope,
        "scope_key": request.scope_key,
        "cap": money_json(request.cap_limit),
        "spent": money_json(request.spent),
        "requested": money_json(request.requested_amount),
        "reason": request.reason,
        "top_traces": None,
    }


@transaction.atomic
def approval_request_ask(
    *,
    agent: Agent,
    scope: str,
    amount: Decimal,
    reason: str,
    trace_id: str = "",
    vendor: Vendor | None = None,
    now: datetime | None = None,
) -> ApprovalRequest:
    """An agent asks ahead for more room on one cap (POST /api/agents/{id}/approvals)."""
    now = now or timezone.now()
    policy = agent.policy
    caps = {
        ApprovalScope.DAILY: policy.daily_cap,
        ApprovalScope.MONTHLY: policy.monthly_cap,
        ApprovalScope.TRACE: policy.per_trace_cap,
    }
    if scope == ApprovalScope.VENDOR:
        if vendor is None:
            raise Conflict("A vendor-scope request names the vendor.")
        cap_row = policy.vendor_caps.filter(vendor=vendor).first()
        cap = cap_row.monthly_cap if cap_row else None
        key = rules.cap_key(rules.SCOPE_VENDOR, vendor_slug=vendor.slug)
    elif scope == ApprovalScope.TRACE:
        if not trace_id:
            raise Conflict("A trace-scope request names the trace.")
        cap, key = caps[scope], rules.cap_key(rules.SCOPE_TRACE, trace_id=trace_id)
    else:
        cap, key = caps[scope], scope
    if cap is None:
        raise Conflict(f"The policy sets no {scope} cap to raise.")
    agent_lock(agent_id=agent.pk)  # one open request per cap
    if ApprovalRequest.objects.filter(
        agent=agent, scope_key=key, status=ApprovalStatus.PENDING
    ).exists():
        raise Conflict("There is already an open request for this cap.")
    request = ApprovalRequest.objects.create(
        agent=agent,
        scope=scope,
        scope_key=key,
        vendor=vendor,
        trace_id=trace_id,
        cap_limit=cap,
        spent=Money(0, policy.currency),
        requested_amount=Money(amount, policy.currency),
        origin=ApprovalOrigin.AGENT,
        declines_attached=0,
        reason=reason,
        expires_at=now + REQUEST_LIFETIME,
        created_at=now,
    )
    outbox_add(
        kind=OutboxKind.APPROVAL_REQUEST,
        key=f"approval:{request.pk}:request",
        payload=request_payload(request),
        channel=channel_for(policy),
        now=now,
        agent=agent,
        approval=request,
    )
    return request


def bump_valid_until(policy: Policy, now: datetime) -> datetime:
    if policy.bump_valid_hours:
        return now + timedelta(hours=policy.bump_valid_hours)
    return day_end(now, policy.time_zone)


def _decide(
    request: ApprovalRequest, *, status: str, actor_label: str, via: str, note: str, now: datetime
) -> ApprovalRequest:
    request.status = status
    request.decided_by = actor_label
    request.decided_via = via
    request.decided_at = now
    request.note = note
    return request


def _locked_pending(request: ApprovalRequest) -> ApprovalRequest:
    """Lock the agent, then the request: the decision engine's order (agent first)."""
    agent_lock(agent_id=request.agent_id)
    locked = (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("agent__policy", "agent__principal")
        .get(pk=request.pk)
    )
    if locked.status != ApprovalStatus.PENDING:
        raise Conflict(
            f"This request was already {locked.status}"
            + (f" by {locked.decided_by}." if locked.decided_by else ".")
        )
    return locked


@transaction.atomic
def approval_grant(
    *,
    request: ApprovalRequest,
    actor_label: str,
    via: str = DecisionChannel.API,
    amount: Decimal | None = None,
    note: str = "",
    now: datetime | None = None,
) -> ApprovalRequest:
    """Approve: a bump of the requested (or edited) amount on exactly that cap, valid
    until the end of the day in the policy's time zone (or the policy's hours)."""
    now = now or timezone.now()
    request = _locked_pending(request)
    currency = str(request.requested_amount.currency)
    granted = Money(amount if amount is not None else request.requested_amount.amount, currency)
    _decide(
        request,
        status=ApprovalStatus.APPROVED,
        actor_label=actor_label,
        via=via,
        note=note,
        now=now,
    )
    request.approved_amount = granted
    request.save(
        update_fields=[
            "status",
            "decided_by",
            "decided_via",
            "decided_at",
            "note",
            "approved_amount",
            "updated_at",
        ]
    )
    bump = CapBump.objects.create(
        agent=request.agent,
        approval=request,
        scope=request.scope,
        scope_key=request.scope_key,
        amount=granted,
        valid_from=now,
        valid_until=bump_valid_until(request.agent.policy, now),
    )
    agent_bumps_valid_until_extend(agent=request.agent, valid_until=bump.valid_until)
    if request.scope_key.startswith("card:"):  # the issuer's limit must let it pass too
        card_controls_push(card_id=request.scope_key.removeprefix("card:"))
    _audit_decision(request, AuditAction.APPROVAL_GRANTED)
    audit_record(
        actor=actor_label,
        action=AuditAction.CAP_BUMPED,
        subject=f"{request.get_scope_display()} cap of {request.agent.name}",
        agent=request.agent,
        object_id=bump.pk,
        reason=note,
        detail={
            "scope": request.scope,
            "scope_key": request.scope_key,
            "amount": money_json(granted)["amount"],
            "currency": currency,
            "valid_until": bump.valid_until.isoformat(),
            "approval_id": str(request.pk),
        },
    )
    _queue_outcome(request, now)
    return request


@transaction.atomic
def approval_deny(
    *,
    request: ApprovalRequest,
    actor_label: str,
    via: str = DecisionChannel.API,
    note: str = "",
    now: datetime | None = None,
) -> ApprovalRequest:
    now = now or timezone.now()
    request = _locked_pending(request)
    _decide(
        request, status=ApprovalStatus.DENIED, actor_label=actor_label, via=via, note=note, now=now
    )
    request.save(
        update_fields=["status", "decided_by", "decided_via", "decided_at", "note", "updated_at"]
    )
    _audit_decision(request, AuditAction.APPROVAL_DENIED)
    _queue_outcome(request, now)
    return request


def _audit_decision(request: ApprovalRequest, action: AuditAction) -> None:
    requested = request.requested_amount
    audit_record(
        actor=request.decided_by,
        action=action,
        subject=f"approval for {request.agent.name}: {request.get_scope_display()} cap",
        agent=request.agent,
        object_id=request.pk,
        reason=request.note,
        detail={
            "via": request.decided_via,
            "requested": money_json(requested)["amount"],
            "approved": money_json(request.approved_amount)["amount"]
            if request.approved_amount
            else None,
            "currency": str(requested.currency),
        },
    )


def _queue_outcome(request: ApprovalRequest, now: datetime) -> None:
    """Update the original Slack message to show the outcome."""
    payload = request_payload(request)
    payload["outcome"] = {
        "status": request.status,
        "decided_by": request.decided_by,
        "decided_via": request.decided_via,
        "note": request.note,
        "approved_amount": money_json(request.approved_amount),
        "valid_until": request.bump.valid_until.isoformat()
        if request.status == ApprovalStatus.APPROVED
        else None,
    }
    outbox_add(
        kind=OutboxKind.APPROVAL_OUTCOME,
        key=f"approval:{request.pk}:outcome",
        payload=payload,
        channel=request.slack_channel or channel_for(request.agent.policy),
        now=now,
        agent=request.agent,
        approval=request,
    )


def approvals_expire(*, now: datetime | None = None) -> int:
    """Lapse pending requests nobody answered in time. Returns how many."""
    now = now or timezone.now()
    expired = 0
    for request in ApprovalRequest.objects.filter(
        status=ApprovalStatus.PENDING, expires_at__lte=now
    )[:500]:
        with transaction.atomic():
            try:
                locked = _locked_pending(request)
            except Conflict:
                continue
            _decide(
                locked,
                status=ApprovalStatus.EXPIRED,
                actor_label="system",
                via=DecisionChannel.SYSTEM,
                note="Nobody decided in time.",
                now=now,
            )
            locked.save(
                update_fields=[
                    "status",
                    "decided_by",
                    "decided_via",
                    "decided_at",
                    "note",
                    "updated_at",
                ]
            )
            _audit_decision(locked, AuditAction.APPROVAL_EXPIRED)
            _queue_outcome(locked, now)
            expired += 1
    return expired


def ephemeral_reply(*, channel: str, user: str, text: str, key: str) -> None:
    """A message only one Slack user sees (refusals, 'already decided')."""
    outbox_add(
        kind=OutboxKind.EPHEMERAL,
        key=key,
        payload={"user": user, "text": text},
        channel=channel,
        now=timezone.now(),
    )


def warnings_queue(*, agent: Agent, crossings: list[dict[str, Any]], now: datetime) -> None:
    """One early warning per cap, window and threshold (the key makes it once)."""
    for crossing in crossings:
        key = (
            f"warning:{agent.pk}:{crossing['scope_key']}:{crossing['window']}:"
            f"{crossing['threshold']}"
        )
        outbox_add(
            kind=OutboxKind.WARNING,
            key=key,
            channel=channel_for(agent.policy),
            now=now,
            agent=agent,
            payload={"agent": {"id": str(agent.pk), "name": agent.name}, **crossing},
        )
