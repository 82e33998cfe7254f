"""Periodic and queued ledger work (see CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from ledger.fx import fx_rates_age, fx_rates_load
from ledger.services import counters_prune, holds_expire, month_counters_recut_pending
from ledger.services.reports import sprint_reports_due
from ledger.services.rollups import spend_rollups_advance
from ledger.services.runaway import runaways_sweep

logger = logging.getLogger(__name__)


@shared_task(acks_late=True)
def expire_holds_task() -> int:
    """Release holds never captured within AGENTWALLET_HOLD_EXPIRY_DAYS."""
    return holds_expire()


@shared_task(acks_late=True)
def prune_spend_counters_task() -> int:
    """Drop minute and hour counters that no rolling window reads any more."""
    return counters_prune(now=timezone.now())


@shared_task(acks_late=True)
def advance_spend_rollups_task() -> int:
    """Fold the ledger's new entries into the portal's spend rollups (the longer this
    waits, the more of the ledger each portal read groups: correct, only slower)."""
    return spend_rollups_advance()


@shared_task(acks_late=True)
def sweep_runaways_task() -> int:
    """Flag the agents and traces whose last hour runs far above their usual (and freeze
    those whose policy says so); the number flagged."""
    return len(runaways_sweep())


@shared_task(acks_late=True)
def sprint_reports_due_task() -> int | None:
    """Build the last sprint's report once it has ended (and tell Slack); its id."""
    report = sprint_reports_due()
    return report.pk if report else None


@shared_task(acks_late=True)
def recut_month_counters_task() -> int:
    """Cut again the month counters of agents whose policy's time zone changed (queued
    by the change, and swept by beat in case the queueing failed)."""
    return month_counters_recut_pending()


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=60, max_retries=8)
def load_fx_rates_task() -> str:
    """Load the day's exchange rates, as `manage.py load_fx_rates` does. A source that
    cannot be reached is tried again for about an hour; a bad file is not."""
    snapshot = fx_rates_load()
    age = fx_rates_age(snapshot.rates_date)
    if age.stale:
        logger.warning("%s (source: %s)", age.warning, snapshot.source)
    return f"{snapshot.currencies} rates for {snapshot.rates_date}"


@shared_task(bind=True, acks_late=True, max_retries=12)
def reconcile_issuer_task(self, day: str | None = None) -> int | None:
    """Hold yesterday's (UTC) issuer records against the ledger; the number of
    mismatches, or None when the issuer keeps no records (the sandbox). An issuer that
    is away is tried again, every 20 minutes for about four hours."""
    from datetime import date

    from cards.issuers import IssuerError
    from ledger.services.reconciliation import issuer_reconcile, yesterday_utc

    try:
        run = issuer_reconcile(day=date.fromisoformat(day) if day else yesterday_utc())
    except IssuerError as error:
        if self.request.is_eager:
            raise
        raise self.retry(exc=error, countdown=20 * 60) from None
    return None if run is None else len(run.mismatches)
