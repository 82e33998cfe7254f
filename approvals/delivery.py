"""Delivering the outbox to Slack: once, with retries and backoff."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from slack_sdk.errors import SlackApiError, SlackClientError

from agentwallet.lib.money import money_json
from approvals.models import ApprovalRequest, OutboxKind, OutboxMessage, OutboxStatus
from approvals.slack import blocks
from approvals.slack.client import slack_client, slack_configured
from ledger.selectors import top_traces
from wallets.models import Agent

logger = logging.getLogger("agentwallet.slack")

MAX_ATTEMPTS = 12
BACKOFF_BASE_SECONDS = 2
BACKOFF_CAP_SECONDS = 600


def backoff(attempts: int) -> int:
    return min(BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_CAP_SECONDS)


@dataclass(frozen=True)
class DeliveryResult:
    status: str  # sent / held / failed / pending (will retry) / busy / gone
    retry_in: int | None = None


def outbox_deliver(*, message_id: int, now: datetime | None = None) -> DeliveryResult:
    """Send one outbox message. The row lock (skip locked) keeps two workers from
    sending the same message; a sent message is never sent again."""
    now = now or timezone.now()
    with transaction.atomic():
        message = (
            OutboxMessage.objects.select_for_update(skip_locked=True).filter(pk=message_id).first()
        )
        if message is None:
            exists = OutboxMessage.objects.filter(pk=message_id).exists()
            return DeliveryResult("busy" if exists else "gone")
        if message.status != OutboxStatus.PENDING:
            return DeliveryResult(message.status)
        if not slack_configured() or not message.channel:
            message.status = OutboxStatus.HELD
            message.last_error = (
                "No SLACK_BOT_TOKEN: kept in the outbox."
                if not slack_configured()
                else "No Slack channel configured."
            )
            message.save(update_fields=["status", "last_error"])
            return DeliveryResult(OutboxStatus.HELD)
        try:
            ts = _send(message)
        except (SlackApiError, SlackClientError, OSError, ValueError) as exc:
            message.attempts += 1
            message.last_error = f"{type(exc).__name__}: {exc}"[:1000]
            if message.attempts >= MAX_ATTEMPTS:
                message.status = OutboxStatus.FAILED
                logger.error("gave up on outbox message %s: %s", message.pk, message.last_error)
                retry = None
            else:
                retry = backoff(message.attempts)
                message.next_attempt_at = now + timedelta(seconds=retry)
                logger.warning(
                    "outbox message %s failed (attempt %s), retry in %ss: %s",
                    message.pk,
                    message.attempts,
                    retry,
                    message.last_error,
                )
            message.save(update_fields=["attempts", "last_error", "status", "next_attempt_at"])
            return DeliveryResult(message.status, retry)
        message.status = OutboxStatus.SENT
        message.sent_at = now
        message.attempts += 1
        message.slack_ts = ts
        message.save(update_fields=["status", "sent_at", "attempts", "slack_ts"])
        return DeliveryResult(OutboxStatus.SENT)


def _send(message: OutboxMessage) -> str:
    client = slack_client()
    payload = message.payload
    if message.kind in (OutboxKind.APPROVAL_REQUEST, OutboxKind.APPROVAL_OUTCOME):
        # Looked up now, not in the transaction that wrote the message (a decision's).
        request = ApprovalRequest.objects.select_related("agent").get(pk=message.approval_id)
        payload = {**payload, "top_traces": _top_traces(request.agent, message.created_at)}
    if message.kind == OutboxKind.APPROVAL_REQUEST:
        response = client.chat_postMessage(
            channel=message.channel,
            text=blocks.approval_request_text(payload),
            blocks=blocks.approval_request_blocks(payload),
        )
        ApprovalRequest.objects.filter(pk=message.approval_id).update(
            slack_channel=response["channel"], slack_ts=response["ts"]
        )
        return str(response["ts"])
    if message.kind == OutboxKind.APPROVAL_OUTCOME:
        text = blocks.approval_request_text(payload)
        outcome_blocks = blocks.approval_outcome_blocks(payload)
        if request.slack_ts:
            response = client.chat_update(
                channel=request.slack_channel, ts=request.slack_ts, text=text, blocks=outcome_blocks
            )
        else:  # the card itself never made it to Slack: post the outcome on its own
            response = client.chat_postMessage(
                channel=message.channel, text=text, blocks=outcome_blocks
            )
        return str(response["ts"])
    if message.kind == OutboxKind.EPHEMERAL:
        response = client.chat_postEphemeral(
            channel=message.channel, user=payload["user"], text=payload["text"]
        )
        return str(response.get("message_ts", ""))
    text_of, blocks_of = POSTED[message.kind]
    response = client.chat_postMessage(
        channel=message.channel, text=text_of(payload), blocks=blocks_of(payload)
    )
    return str(response["ts"])


# The kinds that post one message of their own: its text and its blocks.
POSTED = {
    OutboxKind.WARNING: (blocks.warning_text, blocks.warning_blocks),
    OutboxKind.RUNAWAY: (blocks.runaway_text, blocks.runaway_blocks),
    OutboxKind.SPRINT_REPORT: (blocks.sprint_report_text, blocks.sprint_report_blocks),
    OutboxKind.RECONCILIATION: (blocks.reconciliation_text, blocks.reconciliation_blocks),
}


def outbox_due(*, now: datetime | None = None, limit: int = 200) -> list[int]:
    now = now or timezone.now()
    return list(
        OutboxMessage.objects.filter(status=OutboxStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


def _top_traces(agent: Agent, when: datetime) -> list[dict[str, Any]]:
    """The agent's biggest traces of the 24 hours before `when`, for the approval card
    (looked up when the card is sent, not under the decision's lock)."""
    return [
        {"trace_id": trace_id, "spent": money_json(spent)}
        for trace_id, spent in top_traces(agent=agent, since=when - timedelta(days=1))
    ]
