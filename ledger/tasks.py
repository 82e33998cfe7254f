"""Periodic and queued ledger work (see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from ledger.services import counters_prune, holds_expire, month_counters_recut_pending


@shared_task(acks_late=True)
def expire_holds_task() -> int:
    """Release holds never captured within AGENTWALLET_HOLD_EXPIRY_DAYS."""
    return holds_expire()


@shared_task(acks_late=True)
def prune_spend_counters_task() -> int:
    """Drop minute and hour counters that no rolling window reads any more."""
    return counters_prune(now=timezone.now())


@shared_task(acks_late=True)
def recut_month_counters_task() -> int:
    """Cut again the month counters of agents whose policy's time zone changed (queued
    by the change, and swept by beat in case the queueing failed)."""
    return month_counters_recut_pending()
