"""Handing outbox messages to Celery without ever making a request wait on Redis.

After the decision commits, the message id goes on an in-process queue; one daemon
thread publishes it to the broker. With the broker down the thread's attempt fails and
is dropped: the row is still pending in the outbox, and the periodic sweep delivers it
once the broker is back. In eager mode (no REDIS_URL) delivery happens inline.
"""

from __future__ import annotations

import logging
import queue
import threading

logger = logging.getLogger("agentwallet.slack")

_pending: queue.Queue[int] = queue.Queue(maxsize=10_000)
_lock = threading.Lock()
_thread: threading.Thread | None = None
# After a failed publish, skip the broker for a while: each attempt on a dead broker
# costs seconds, and the sweep delivers whatever is skipped.
BROKER_PAUSE_SECONDS = 5.0
_broker_down_until = 0.0


def dispatch_outbox_message(message_id: int) -> None:
    from approvals.tasks import deliver_outbox_message_task

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
    from approvals.tasks import deliver_outbox_message_task

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


def wait_for_hand_off(timeout: float = 10.0) -> None:
    """For tests: block until every queued id was handed to the broker (or dropped)."""
    _pending.join()
