"""The daily reconciliation with the card issuer: its records of a day held against ours.

The issuer's authorizations and transactions created in one UTC day are looked up in
our ledger, and ours of that day at the issuer; every card the issuer has is compared
with our row (status and controls; ours, the truth, is sent again where they differ).
What differs is kept (IssuerReconciliation, shown in the admin and the portal) and
posted to Slack through the outbox. Nothing in the ledger is changed: a difference is
for finance to look into, not for code to guess at.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, cast

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone

from approvals.models import OutboxKind
from approvals.outbox import outbox_add
from approvals.selectors import card_bumps_in_force
from cards.issuers import IssuerError, ReconcilableIssuer, get_issuer
from cards.models import Card, CardStatus
from cards.services import ISSUER_CONTROLS, ISSUER_STATUS, card_controls, issuer_card_sync
from ledger.models import (
    Authorization,
    Decision,
    EntryKind,
    IssuerReconciliation,
    LedgerEntry,
    ReconciliationMismatch,
)

logger = logging.getLogger("agentwallet.reconciliation")

Mismatch = ReconciliationMismatch


def issuer_reconcile(
    *, day: date, issuer_name: str | None = None, now: datetime | None = None
) -> IssuerReconciliation | None:
    """Reconcile one UTC day. None for an issuer that keeps no records of its own (the
    sandbox: our rows are all there is)."""
    now = now or timezone.now()
    backend = get_issuer(issuer_name)
    if not hasattr(backend, "authorizations_between"):
        return None
    issuer = cast(ReconcilableIssuer, backend)
    start = datetime.combine(day, time.min, tzinfo=UTC)
    end = start + timedelta(days=1)
    found: list[dict[str, Any]] = []
    counts = {
        "authorizations": _authorizations(issuer, start, end, found),
        "transactions": _transactions(issuer, start, end, found),
        "cards": _cards(issuer, now, found),
    }
    with transaction.atomic():
        run, _ = IssuerReconciliation.objects.update_or_create(
            issuer=issuer.name,
            day=day,
            defaults={"ran_at": now, "mismatches": found, **counts},
        )
        if found:
            outbox_add(
                kind=OutboxKind.RECONCILIATION,
                key=f"reconciliation:{issuer.name}:{day.isoformat()}",
                payload=reconciliation_payload(run),
                channel=settings.SLACK_APPROVALS_CHANNEL,
                now=now,
            )
    if found:
        logger.warning("%s reconciliation of %s: %d mismatches", issuer.name, day, len(found))
    return run


def _mismatch(kind: str, object_id: str, detail: str, card_id: object = None) -> dict[str, Any]:
    return {
        "kind": kind,
        "object_id": object_id,
        "card_id": str(card_id) if card_id else None,
        "detail": detail,
    }


def _our_cards(issuer_name: str, issuer_card_ids: set[str]) -> dict[str, Any]:
    return dict(
        Card.objects.filter(issuer=issuer_name, issuer_card_id__in=issuer_card_ids).values_list(
            "issuer_card_id", "pk"
        )
    )


def _authorizations(
    issuer: ReconcilableIssuer, start: datetime, end: datetime, found: list[dict[str, Any]]
) -> int:
    theirs = {auth.id: auth for auth in issuer.authorizations_between(start, end)}
    cards = _our_cards(issuer.name, {auth.card_id for auth in theirs.values()})
    ours = {
        auth.network_id: auth for auth in Authorization.objects.filter(network_id__in=list(theirs))
    }
    # What the issuer raised on its own after the decision: ours grew by it, its
    # requested amount did not.
    increments = dict(
        LedgerEntry.objects.filter(
            authorization__in=list(ours.values()),
            kind=EntryKind.HOLD,
            network_txn_id__isnull=False,
        )
        .values("authorization_id")
        .annotate(total=Sum("amount"))
        .values_list("authorization_id", "total")
    )
    for auth_id, their in theirs.items():
        card_id = cards.get(their.card_id)
        if card_id is None:
            continue  # not a card of ours (another integration on the same account)
        mine = ours.get(auth_id)
        if mine is None:
            found.append(
                _mismatch(
                    Mismatch.AUTHORIZATION_MISSING_HERE,
                    auth_id,
                    f"{'approved' if their.approved else 'declined'} at the issuer for "
                    f"{their.requested} {their.currency}; not in our ledger",
                    card_id,
                )
            )
            continue
        approved_here = mine.decision == Decision.APPROVED
        if approved_here != their.approved:
            found.append(
                _mismatch(
                    Mismatch.DECISION_DIFFERS,
                    auth_id,
                    f"{mine.decision} here ({mine.reason or 'approved'}), "
                    f"{'approved' if their.approved else 'declined'} at the issuer",
                    card_id,
                )
            )
        requested = mine.amount.amount - Decimal(increments.get(mine.pk) or 0)
        if (requested, str(mine.amount.currency)) != (their.requested, their.currency):
            found.append(
                _mismatch(
                    Mismatch.AMOUNT_DIFFERS,
                    auth_id,
                    f"{requested} {mine.amount.currency} here, "
                    f"{their.requested} {their.currency} at the issuer",
                    card_id,
                )
            )
    ours_that_day = Authorization.objects.filter(
        card__issuer=issuer.name, decided_at__gte=start, decided_at__lt=end
    ).exclude(network_id__in=list(theirs))
    for mine in ours_that_day:
        found.append(
            _mismatch(
                Mismatch.AUTHORIZATION_MISSING_AT_ISSUER,
                mine.network_id,
                f"{mine.decision} here for {mine.amount}; the issuer has no such authorization",
                mine.card_id,
            )
        )
    return len(theirs)


def _transactions(
    issuer: ReconcilableIssuer, start: datetime, end: datetime, found: list[dict[str, Any]]
) -> int:
    theirs = {txn.id: txn for txn in issuer.transactions_between(start, end)}
    cards = _our_cards(issuer.name, {txn.card_id for txn in theirs.values()})
    ours = {
        entry.network_txn_id: entry
        for entry in LedgerEntry.objects.filter(network_txn_id__in=list(theirs))
    }
    for txn_id, their in theirs.items():
        card_id = cards.get(their.card_id)
        if card_id is None:
            continue
        mine = ours.get(txn_id)
        if mine is None:
            found.append(
                _mismatch(
                    Mismatch.TRANSACTION_MISSING_HERE,
                    txn_id,
                    f"{their.kind} of {their.amount} {their.currency} at the issuer; "
                    "not in our ledger",
                    card_id,
                )
            )
        elif (mine.amount.amount, str(mine.amount.currency)) != (their.amount, their.currency):
            found.append(
                _mismatch(
                    Mismatch.TRANSACTION_AMOUNT_DIFFERS,
                    txn_id,
                    f"{mine.kind} of {mine.amount} here, {their.amount} {their.currency} "
                    "at the issuer",
                    card_id,
                )
            )
    ours_that_day = (
        LedgerEntry.objects.filter(
            card__issuer=issuer.name,
            kind__in=(EntryKind.CAPTURE, EntryKind.REFUND),
            network_txn_id__isnull=False,
            created_at__gte=start,
            created_at__lt=end,
        )
        .exclude(network_txn_id__in=list(theirs))
        .only("network_txn_id", "kind", "amount", "amount_currency", "card_id")
    )
    for mine in ours_that_day:
        # Created at the issuer on another day (just before midnight), or never.
        if not issuer.transaction_exists(mine.network_txn_id):  # type: ignore[arg-type]
            found.append(
                _mismatch(
                    Mismatch.TRANSACTION_MISSING_AT_ISSUER,
                    str(mine.network_txn_id),
                    f"{mine.kind} of {mine.amount} here; the issuer has no such transaction",
                    mine.card_id,
                )
            )
    return len(theirs)


def _cards(issuer: ReconcilableIssuer, now: datetime, found: list[dict[str, Any]]) -> int:
    ours = {
        card.issuer_card_id: card
        for card in Card.objects.filter(issuer=issuer.name).select_related("agent__policy")
    }
    bumps = card_bumps_in_force(now=now)
    resend: dict[str, list[Card]] = defaultdict(list)
    seen = 0
    for their in issuer.cards():
        seen += 1
        mine = ours.pop(their.id, None)
        if mine is None:
            found.append(
                _mismatch(
                    Mismatch.CARD_MISSING_HERE,
                    their.id,
                    f"{their.status} at the issuer; unknown here",
                )
            )
        elif mine.status != their.status:
            found.append(
                _mismatch(
                    Mismatch.CARD_STATUS_DIFFERS,
                    their.id,
                    f"{mine.status} here, {their.status} at the issuer",
                    mine.pk,
                )
            )
            resend[ISSUER_STATUS].append(mine)
        elif mine.status != CardStatus.CLOSED:
            wanted = issuer.controls_of(card_controls(mine, bump_cents=bumps.get(str(mine.pk), 0)))
            if wanted != their.controls:
                found.append(
                    _mismatch(
                        Mismatch.CARD_CONTROLS_DIFFER,
                        their.id,
                        f"the issuer has {their.controls}, ours are {wanted}",
                        mine.pk,
                    )
                )
                resend[ISSUER_CONTROLS].append(mine)
    for mine in ours.values():
        if mine.status != CardStatus.CLOSED:
            found.append(
                _mismatch(
                    Mismatch.CARD_MISSING_AT_ISSUER,
                    mine.issuer_card_id,
                    f"{mine.status} here; the issuer has no such card",
                    mine.pk,
                )
            )
    for what, cards in resend.items():
        for card in cards:
            try:
                issuer_card_sync(card_id=card.pk, what=what)
            except IssuerError as exc:  # reported already; tomorrow's run tries again
                logger.warning("could not re-send card %s's %s: %s", card.pk, what, exc)
    return seen


def reconciliation_payload(run: IssuerReconciliation) -> dict[str, Any]:
    """What the Slack message says (approvals.slack.blocks.reconciliation_blocks)."""
    by_kind = Counter(mismatch["kind"] for mismatch in run.mismatches)
    path = reverse("portal-reconciliation", args=[run.pk])
    return {
        "issuer": run.issuer,
        "day": run.day.isoformat(),
        "mismatches": len(run.mismatches),
        "by_kind": {
            ReconciliationMismatch(kind).label: count for kind, count in sorted(by_kind.items())
        },
        "examples": [mismatch["detail"] for mismatch in run.mismatches[:5]],
        "url": f"{settings.AGENTWALLET_PORTAL_URL.rstrip('/')}{path}",
    }


def yesterday_utc(now: datetime | None = None) -> date:
    return ((now or timezone.now()).astimezone(UTC) - timedelta(days=1)).date()
