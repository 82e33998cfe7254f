"""Periodic wallet work (see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from wallets.x402.services import x402_release_lapsed


@shared_task(acks_late=True)
def release_lapsed_x402_payments_task() -> int:
    """Give back the spend of x402 payments never settled by their valid-before."""
    return x402_release_lapsed()
