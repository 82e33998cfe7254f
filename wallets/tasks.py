"""Wallet work off the request: periodic (see CELERY_BEAT_SCHEDULE) and mail."""

from __future__ import annotations

from smtplib import SMTPException

from celery import Task, shared_task

from wallets.models import Principal
from wallets.verification import verification_mail
from wallets.x402.services import x402_release_lapsed


@shared_task(acks_late=True)
def release_lapsed_x402_payments_task() -> int:
    """Give back the spend of x402 payments never settled by their valid-before."""
    return x402_release_lapsed()


@shared_task(bind=True, acks_late=True, max_retries=30)
def principal_verification_mail_task(self: Task, principal_id: int) -> bool:
    """Mail the principal a verification link; nothing once they are verified. A mail
    server that is down is retried, backing off to hourly, for about a day (the link
    lasts three); run inline (no broker), the failure is the caller's to log."""
    principal = Principal.objects.filter(pk=principal_id).first()
    if principal is None or principal.email_verified_at is not None:
        return False
    try:
        verification_mail(principal)
    except (SMTPException, OSError) as error:
        if self.request.is_eager:
            raise
        raise self.retry(exc=error, countdown=min(3600, 30 * 2**self.request.retries)) from None
    return True
