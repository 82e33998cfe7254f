"""Work for the card issuer that must not hold up a freeze or a decision."""

from __future__ import annotations

from celery import Task, shared_task

from cards.issuers import IssuerError
from cards.services import issuer_card_sync


@shared_task(bind=True, acks_late=True, max_retries=40)
def issuer_card_sync_task(self: Task, card_id: str, what: str) -> str:
    """Bring the issuer's copy of a card (its status or its controls) in line with our
    row. An issuer that is away is retried, backing off to every 10 minutes for about
    six hours; our rules decline meanwhile whatever the issuer would still allow. Run
    inline (no broker), the failure is the caller's to log."""
    try:
        return issuer_card_sync(card_id=card_id, what=what)
    except IssuerError as error:
        if self.request.is_eager:
            raise
        raise self.retry(exc=error, countdown=min(600, 5 * 2**self.request.retries)) from None
