"""What a click in Slack means: approve, approve with an amount, deny; who may."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from agentwallet.lib.errors import Conflict
from approvals.models import ApprovalRequest, ApprovalStatus, Approver, DecisionChannel
from approvals.services import approval_deny, approval_grant, ephemeral_reply
from approvals.slack.blocks import amount_modal
from approvals.slack.client import slack_client

logger = logging.getLogger("agentwallet.slack")


def approver_label(request: ApprovalRequest, slack_user_id: str) -> str | None:
    """Who the Slack user is, if they may decide this request; None otherwise.

    The agent's principal may; so may an active portal user linked to that Slack id who
    holds the approve permission.
    """
    principal = request.agent.principal
    if principal.slack_user_id and principal.slack_user_id == slack_user_id:
        return f"{principal.email} (slack:{slack_user_id})"
    approver = Approver.objects.select_related("user").filter(slack_user_id=slack_user_id).first()
    if (
        approver is not None
        and approver.user.is_active
        and (approver.user.is_superuser or approver.user.has_perm("approvals.approve_requests"))
    ):
        return f"{approver.user.get_username()} (slack:{slack_user_id})"
    return None


def _reply(payload: dict[str, Any], text: str, key: str) -> None:
    channel = (payload.get("channel") or {}).get("id") or ""
    user = payload["user"]["id"]
    if channel:
        ephemeral_reply(channel=channel, user=user, text=text, key=key)


def slack_interaction_handle(payload: dict[str, Any]) -> str:
    """Handle a block action or a modal submission (queued by the interactivity view)."""
    kind = payload.get("type")
    user_id = payload["user"]["id"]
    if kind == "view_submission":
        values = payload["view"]["state"]["values"]
        approval_id = int(payload["view"]["private_metadata"])
        amount = Decimal(values["amount"]["value"]["value"].strip())
        note = (values.get("note", {}).get("value", {}).get("value") or "").strip()
        return _decide(payload, approval_id, "approve", user_id, amount=amount, note=note)
    if kind != "block_actions":
        return "ignored"
    action = payload["actions"][0]
    return _decide(payload, int(action["value"]), action["action_id"], user_id)


def _decide(
    payload: dict[str, Any],
    approval_id: int,
    action: str,
    user_id: str,
    amount: Decimal | None = None,
    note: str = "",
) -> str:
    click = f"{payload.get('trigger_id') or payload.get('action_ts') or ''}"
    request = (
        ApprovalRequest.objects.select_related("agent__principal").filter(pk=approval_id).first()
    )
    if request is None:
        return "unknown"
    label = approver_label(request, user_id)
    if label is None:
        logger.warning("slack user %s may not decide approval %s", user_id, approval_id)
        _reply(
            payload,
            "You are not allowed to decide this request.",
            f"refusal:{approval_id}:{user_id}:{click}",
        )
        return "refused"
    if request.status != ApprovalStatus.PENDING:
        _reply(
            payload,
            f"Already {request.status} by {request.decided_by or 'the system'}; nothing changed.",
            f"already:{approval_id}:{user_id}:{click}",
        )
        return "already"
    if action == "approve_amount":
        slack_client().views_open(
            trigger_id=payload["trigger_id"],
            view=amount_modal(
                approval_id=request.pk,
                requested={
                    "amount": f"{request.requested_amount.amount:.2f}",
                    "currency": str(request.requested_amount.currency),
                },
            ),
        )
        return "modal"
    try:
        if action == "approve":
            approval_grant(
                request=request,
                actor_label=label,
                via=DecisionChannel.SLACK,
                amount=amount,
                note=note,
            )
        elif action == "deny":
            approval_deny(request=request, actor_label=label, via=DecisionChannel.SLACK, note=note)
        else:
            return "ignored"
    except Conflict as exc:  # a concurrent click won
        _reply(payload, f"{exc} Nothing changed.", f"already:{approval_id}:{user_id}:{click}")
        return "already"
    return "approved" if action == "approve" else "denied"
