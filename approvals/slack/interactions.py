"""What a click in Slack means: approve, approve with an amount, deny; who may."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import MoneyError, parse_amount
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
    channel = payload.get("channel")
    channel = channel.get("id") if isinstance(channel, dict) else None
    user = payload["user"]["id"]
    if isinstance(channel, str) and channel:
        ephemeral_reply(channel=channel, user=user, text=text, key=key)


class MalformedInteraction(ValueError):
    """A signed Slack payload that is not a click or submission we know how to read."""


@dataclass(frozen=True)
class Interaction:
    """What a Slack payload asks, read once and checked: the view answers 400 to anything
    else, so the worker never meets a payload it cannot handle."""

    kind: str  # "block_actions" | "view_submission" | anything else (ignored)
    user_id: str
    approval_id: int | None = None
    action: str = ""
    amount: Decimal | None = None
    note: str = ""


SLACK_ID = re.compile(r"[A-Z0-9]{1,64}", re.ASCII)
APPROVAL_ID = re.compile(r"[0-9]{1,18}", re.ASCII)
ACTIONS = ("approve", "approve_amount", "deny")


def interaction_parse(payload: Any) -> Interaction:
    """Read a Slack interactivity payload; raise MalformedInteraction on any other shape."""
    try:
        user_id = payload["user"]["id"]
        kind = payload.get("type")
    except (KeyError, TypeError, AttributeError) as exc:
        raise MalformedInteraction("The payload names no Slack user.") from exc
    if not isinstance(user_id, str) or not SLACK_ID.fullmatch(user_id):
        raise MalformedInteraction("The Slack user id is malformed.")
    if kind == "view_submission":
        try:
            view = payload["view"]
            metadata = view["private_metadata"]
            values = view["state"]["values"]
            raw_amount = values["amount"]["value"]["value"]
            raw_note = ((values.get("note") or {}).get("value") or {}).get("value") or ""
        except (KeyError, TypeError, AttributeError) as exc:
            raise MalformedInteraction("The submission is not the amount form.") from exc
        if not isinstance(raw_amount, str) or not isinstance(raw_note, str):
            raise MalformedInteraction("The submission's fields are not text.")
        return Interaction(
            kind=kind,
            user_id=user_id,
            approval_id=_approval_id(metadata),
            action="approve",
            amount=amount_typed(raw_amount),  # None: the view asks again
            note=raw_note.strip()[:500],
        )
    if kind != "block_actions":
        return Interaction(kind=str(kind), user_id=user_id)
    try:
        action = payload["actions"][0]
        action_id, value = action["action_id"], action["value"]
    except (KeyError, IndexError, TypeError) as exc:
        raise MalformedInteraction("The click names no action.") from exc
    if action_id not in ACTIONS:
        raise MalformedInteraction("Unknown action.")
    if action_id == "approve_amount" and not isinstance(payload.get("trigger_id"), str):
        raise MalformedInteraction("Opening the amount form needs the click's trigger_id.")
    return Interaction(
        kind=kind, user_id=user_id, approval_id=_approval_id(value), action=action_id
    )


def _approval_id(value: Any) -> int:
    if not isinstance(value, str) or not APPROVAL_ID.fullmatch(value):
        raise MalformedInteraction("The approval id is malformed.")
    return int(value)


def amount_typed(raw: str) -> Decimal | None:
    """The amount a person typed in the modal (spaces around it forgiven), or None."""
    try:
        return parse_amount(raw.strip(), "USD")
    except MoneyError:
        return None


def slack_interaction_handle(payload: dict[str, Any]) -> str:
    """Handle a block action or a modal submission (queued by the interactivity view)."""
    try:
        interaction = interaction_parse(payload)
    except MalformedInteraction:
        logger.warning("ignored a malformed Slack payload")
        return "malformed"
    if interaction.kind not in ("view_submission", "block_actions"):
        return "ignored"
    if interaction.kind == "view_submission" and interaction.amount is None:
        return "malformed"
    assert interaction.approval_id is not None  # noqa: S101 (set for both kinds)
    return _decide(
        payload,
        interaction.approval_id,
        interaction.action,
        interaction.user_id,
        amount=interaction.amount,
        note=interaction.note,
    )


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
