"""Celery tasks for Slack work. They run on the `slack` queue (CELERY_TASK_ROUTES), so
a slow Slack cannot delay anything else."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from approvals.delivery import outbox_deliver, outbox_due
from approvals.services import approvals_expire


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_outbox_message_task(self: Task, message_id: int) -> str:
    result = outbox_deliver(message_id=message_id)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return result.status


@shared_task(acks_late=True)
def sweep_outbox_task() -> int:
    """Deliver whatever is due: messages whose enqueue failed (broker down) or whose
    retry time has come. Safe alongside the per-message task (row locks)."""
    sent = 0
    for message_id in outbox_due():
        if outbox_deliver(message_id=message_id).status == "sent":
            sent += 1
    return sent


@shared_task(acks_late=True)
def expire_approvals_task() -> int:
    return approvals_expire()


@shared_task(acks_late=True)
def handle_slack_interaction_task(payload: dict[str, Any]) -> str:
    from approvals.slack.interactions import slack_interaction_handle

    return slack_interaction_handle(payload)
