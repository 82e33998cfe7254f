"""Celery tasks of the approvals app. They run on the `slack` queue (CELERY_TASK_ROUTES),
so a slow Slack cannot delay anything else. The outbox's delivery tasks are in
`approvals/outbox.py`, beside the hand-off that queues them."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from approvals.services import approvals_expire
from approvals.slack.interactions import slack_interaction_handle


@shared_task(acks_late=True)
def expire_approvals_task() -> int:
    return approvals_expire()


@shared_task(acks_late=True)
def handle_slack_interaction_task(payload: dict[str, Any]) -> str:
    return slack_interaction_handle(payload)
