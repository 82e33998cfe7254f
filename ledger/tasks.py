"""Periodic ledger work, run by Celery beat (see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from ledger.counters import counters_prune
from ledger.services import holds_expire


@shared_task(acks_late=True)
def expire_holds_task() -> int:
    """Release holds never captured within AGENTWALLET_HOLD_EXPIRY_DAYS."""
    return holds_expire()


@shared_task(acks_late=True)
def prune_spend_counters_task() -> int:
    """Drop minute and hour counters that no rolling window reads any more."""
    return counters_prune(now=timezone.now())
