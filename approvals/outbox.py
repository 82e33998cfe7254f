"""The Slack outbox: messages written in the transaction that causes them, delivered by
Celery once it commits, never making a request wait on Redis or Slack.

After commit the message id goes on an in-process queue; one daemon thread hands it to
the broker. With the broker down the hand-off fails and is dropped: the row is still
pending, and the periodic sweep delivers it once the broker is back. In eager mode (no
REDIS_URL, the embedded default) delivery happens inline. The tasks run on the `slack`
queue (CELERY_TASK_ROUTES), so a slow Slack delays nothing else.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime
from typing import Any

from celery import Task, shared_task
from django.db import transaction

from approvals.delivery import outbox_deliver, outbox_due
from approvals.models import ApprovalRequest, OutboxMessage
from wallets.models import Agent

logger = logging.getLogger("agentwallet.slack")


def outbox_add(
    *,
    kind: str,
    key: str,
    payload: dict[str, Any],
    channel: str,
    now: datetime,
    agent: Agent | None = None,
    approval: ApprovalRequest | None = None,
    fresh: bool = False,
) -> OutboxMessage | None:
    """Queue a Slack message in the caller's transaction; delivery starts after commit.

    Returns None when a message with this key already exists (one per cause). `fresh`
    says the key cannot exist yet (it names a row just created): one INSERT, no lookup.
    """
    fields = {
        "kind": kind,
        "payload": payload,
        "channel": channel,
        "agent": agent,
        "approval": approval,
        "created_at": now,
        "next_attempt_at": now,
    }
    if fresh:
        message = OutboxMessage.objects.create(idempotency_key=key, **fields)
    else:
        message, created = OutboxMessage.objects.get_or_create(idempotency_key=key, defaults=fields)
        if not created:
            return None
    transaction.on_commit(lambda: _hand_off(message.pk), robust=True)
    return message


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_outbox_message_task(self: Task, message_id: int) -> str:
    result = outbox_deliver(message_id=message_id)
    if result.retry_in is not None:
        raise self.retry(countdown=result.retry_in)
    return result.status


@shared_task(acks_late=True)
def sweep_outbox_task() -> int:
    """Deliver whatever is due: messages whose hand-off failed (broker down) or whose
    retry time has come. Safe alongside the per-message task (row locks)."""
    sent = 0
    for message_id in outbox_due():
        if outbox_deliver(message_id=message_id).status == "sent":
            sent += 1
    return sent


# --- The hand-off to the broker -------------------------------------------------------

_pending: queue.Queue[int] = queue.Queue(maxsize=10_000)
_lock = threading.Lock()
_thread: threading.Thread | None = None


def _hand_off(message_id: int) -> None:
    if deliver_outbox_message_task.app.conf.task_always_eager:
        deliver_outbox_message_task.apply_async((message_id,))
        return
    _ensure_thread()
    try:
        _pending.put_nowait(message_id)
    except queue.Full:
        logger.warning("outbox hand-off queue full; message %s waits for the sweep", message_id)


def _ensure_thread() -> None:
    global _thread
    with _lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(
                target=_publish_forever, name="outbox-publisher", daemon=True
            )
            _thread.start()


def _publish_forever() -> None:
    while True:
        message_id = _pending.get()
        try:
            deliver_outbox_message_task.apply_async((message_id,), retry=False)
        except Exception as exc:
            logger.warning(
                "could not queue outbox message %s (%s); the sweep will deliver it", message_id, exc
            )
        finally:
            _pending.task_done()
