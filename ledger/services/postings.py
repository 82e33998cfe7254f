"""What follows a decision: captures, reversals, refunds and the expiry of holds.

The network has moved this money already, so none of it is declined: it is recorded,
flagged where we did not approve it, and never allowed to create headroom. Each posting
runs in one durable transaction that first locks the agent's row (the lock decisions
take) and only then looks for a replay of its network id, so that concurrent retries of
one event wait for the first and get its answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import convert_down, convert_up, from_cents, to_cents
from cards.models import Card
from cards.selectors import card_get
from ledger import sql
from ledger.fx import fx_quote
from ledger.models import (
    Authorization,
    Decision,
    EntryFlag,
    EntryKind,
    HoldState,
    LedgerEntry,
    Rail,
)
from ledger.selectors import agent_month_time_zone
from wallets.models import Agent
from wallets.selectors import agent_lock


class NotFoundError(LookupError):
    """The network referred to something we do not know (answers 404)."""


@dataclass(frozen=True)
class PostingOutcome:
    entries: list[LedgerEntry]
    authorization: Authorization | None
    replayed: bool = False


def authorization_capture(
    *,
    network_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str | None = None,
    now: datetime | None = None,
) -> PostingOutcome:
    """Clear (part of) an authorization. Captures always succeed: partial, several, more
    than held (flagged), or on a declined authorization (a forced post, flagged)."""
    now = now or timezone.now()
    auth_id, agent_id = _find_authorization(network_id)
    with transaction.atomic(durable=True):
        agent = agent_lock(agent_id=agent_id)
        if (replay := _replayed(network_txn_id)) is not None:
            return replay
        auth = _authorization(auth_id)
        _check_currency(auth, currency)
        if auth.decision == Decision.DECLINED:
            return _force_post(
                auth=auth,
                agent=agent,
                amount=amount,
                currency=currency,
                network_txn_id=network_txn_id,
                now=now,
            )
        rate = auth.fx_rate or Decimal(1)
        capture_cents = to_cents(convert_up(amount, rate))
        released = min(auth.held_cents, capture_cents)
        flag = ""
        if auth.hold_state != HoldState.OPEN:
            flag = EntryFlag.LATE_CAPTURE
        elif capture_cents > auth.held_cents:
            flag = EntryFlag.OVER_CAPTURE
        entries = [
            _entry(
                auth=auth,
                agent=agent,
                kind=EntryKind.CAPTURE,
                amount=amount,
                currency=currency,
                cap_cents=capture_cents,
                rate=rate,
                flag=flag,
                network_txn_id=network_txn_id,
                now=now,
            )
        ]
        if released:
            entries.append(
                _entry(
                    auth=auth,
                    agent=agent,
                    kind=EntryKind.RELEASE,
                    amount=from_cents(released),
                    currency=currency,
                    cap_cents=-released,
                    rate=rate,
                    memo="cleared by capture",
                    now=now,
                )
            )
        _post(entries, agent)
        auth.held_cents -= released
        auth.captured_cents += to_cents(amount)
        _resolve_if_empty(auth, now)
        auth.save(update_fields=["held_cents", "captured_cents", "hold_state", "resolved_at"])
        return PostingOutcome(entries=entries, authorization=auth)


def _force_post(
    *,
    auth: Authorization,
    agent: Agent,
    amount: Decimal,
    currency: str,
    network_txn_id: str | None,
    now: datetime,
) -> PostingOutcome:
    """Money the network moved although we declined (stand-in): recorded, counted, flagged."""
    quote = fx_quote(currency, agent.policy.currency)
    rate = quote.rate if quote else (auth.fx_rate or Decimal(1))
    entry = _entry(
        auth=auth,
        agent=agent,
        kind=EntryKind.CAPTURE,
        amount=amount,
        currency=currency,
        cap_cents=to_cents(convert_up(amount, rate)),
        rate=rate,
        flag=EntryFlag.FORCE_POST,
        network_txn_id=network_txn_id,
        memo=f"forced after decline: {auth.reason}",
        now=now,
        effective_at=now,
    )
    _post([entry], agent)
    auth.captured_cents += to_cents(amount)
    auth.save(update_fields=["captured_cents"])
    return PostingOutcome(entries=[entry], authorization=auth)


def capture_without_authorization(
    *,
    card_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str,
    trace_id: str = "",
    now: datetime | None = None,
) -> PostingOutcome:
    """A capture for an authorization we never saw (network stand-in): a forced post."""
    now = now or timezone.now()
    card = _card(card_id)
    with transaction.atomic(durable=True):
        agent = agent_lock(agent_id=card.agent_id)
        if (replay := _replayed(network_txn_id)) is not None:
            return replay
        quote = fx_quote(currency, agent.policy.currency)
        rate = quote.rate if quote else Decimal(1)
        entry = _entry(
            auth=None,
            agent=agent,
            card=card,
            kind=EntryKind.CAPTURE,
            amount=amount,
            currency=currency,
            cap_cents=to_cents(convert_up(amount, rate)),
            rate=rate,
            trace_id=trace_id or card.trace_id or agent.active_trace_at(now),
            flag=EntryFlag.FORCE_POST,
            network_txn_id=network_txn_id,
            memo="capture without authorization",
            now=now,
            effective_at=now,
        )
        _post([entry], agent)
        return PostingOutcome(entries=[entry], authorization=None)


def authorization_reverse(
    *,
    network_id: str,
    amount: Decimal | None = None,
    currency: str | None = None,
    network_txn_id: str | None = None,
    now: datetime | None = None,
) -> PostingOutcome:
    """Release all (or part) of an open hold, exactly the released amount. A hold
    resolves at most once: reversing a resolved hold is a conflict."""
    now = now or timezone.now()
    auth_id, agent_id = _find_authorization(network_id)
    with transaction.atomic(durable=True):
        agent = agent_lock(agent_id=agent_id)
        if (replay := _replayed(network_txn_id)) is not None:
            return replay
        auth = _authorization(auth_id)
        if auth.hold_state != HoldState.OPEN:
            raise Conflict(
                f"Authorization {network_id} holds nothing to reverse ({auth.hold_state})."
            )
        if currency is not None:
            _check_currency(auth, currency)
        rate = auth.fx_rate or Decimal(1)
        outstanding = _outstanding_cents(auth)
        if amount is None or to_cents(amount) >= outstanding:
            released = auth.held_cents  # everything left, so no cent stays held
            merchant_cents = max(outstanding, 0)
        else:
            released = min(auth.held_cents, to_cents(convert_down(amount, rate)))
            merchant_cents = to_cents(amount)
        entry = _entry(
            auth=auth,
            agent=agent,
            kind=EntryKind.RELEASE,
            amount=from_cents(merchant_cents),
            currency=str(auth.amount.currency),
            cap_cents=-released,
            rate=rate,
            network_txn_id=network_txn_id,
            memo="reversal",
            now=now,
        )
        _post([entry], agent)
        auth.held_cents -= released
        auth.reversed_cents += merchant_cents
        _resolve_if_empty(auth, now)
        if merchant_cents >= outstanding:
            auth.held_cents, auth.hold_state, auth.resolved_at = 0, HoldState.CLOSED, now
        auth.save(update_fields=["held_cents", "reversed_cents", "hold_state", "resolved_at"])
        return PostingOutcome(entries=[entry], authorization=auth)


def refund_record(
    *,
    card_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str,
    authorization_network_id: str | None = None,
    now: datetime | None = None,
) -> PostingOutcome:
    """Money back from a merchant. Linked to a captured authorization it gives back spend,
    up to what was captured there; unlinked it is recorded but creates no headroom."""
    now = now or timezone.now()
    card = _card(card_id)
    auth_id = None
    if authorization_network_id:
        auth_id = (
            Authorization.objects.filter(network_id=authorization_network_id, card_id=card.pk)
            .values_list("pk", flat=True)
            .first()
        )
        if auth_id is None:
            raise NotFoundError(f"No authorization {authorization_network_id} on that card.")
    with transaction.atomic(durable=True):
        agent = agent_lock(agent_id=card.agent_id)
        if (replay := _replayed(network_txn_id)) is not None:
            return replay
        if auth_id is None:
            quote = fx_quote(currency, agent.policy.currency)
            entry = _entry(
                auth=None,
                agent=agent,
                card=card,
                kind=EntryKind.REFUND,
                amount=amount,
                currency=currency,
                cap_cents=0,
                rate=quote.rate if quote else Decimal(1),
                trace_id=card.trace_id,
                flag=EntryFlag.UNLINKED_REFUND,
                network_txn_id=network_txn_id,
                memo="refund without a matching capture",
                now=now,
                effective_at=now,
            )
            _post([entry], agent)
            return PostingOutcome(entries=[entry], authorization=None)
        auth = _authorization(auth_id)
        _check_currency(auth, currency)
        rate = auth.fx_rate or Decimal(1)
        refundable = max(auth.captured_cents - auth.refunded_cents, 0)
        refunded = min(to_cents(amount), refundable)
        entry = _entry(
            auth=auth,
            agent=agent,
            kind=EntryKind.REFUND,
            amount=amount,
            currency=currency,
            cap_cents=-to_cents(convert_down(from_cents(refunded), rate)),
            rate=rate,
            flag="" if refunded == to_cents(amount) else EntryFlag.UNLINKED_REFUND,
            network_txn_id=network_txn_id,
            memo="refund",
            now=now,
        )
        _post([entry], agent)
        auth.refunded_cents += refunded
        auth.save(update_fields=["refunded_cents"])
        return PostingOutcome(entries=[entry], authorization=auth)


def holds_expire(*, now: datetime | None = None, older_than: timedelta | None = None) -> int:
    """Release holds never captured within the expiry period. Returns how many expired."""
    now = now or timezone.now()
    older_than = older_than or timedelta(days=settings.AGENTWALLET_HOLD_EXPIRY_DAYS)
    stale = Authorization.objects.filter(
        hold_state=HoldState.OPEN, decided_at__lt=now - older_than
    ).values_list("pk", "agent_id")[:1000]
    expired = 0
    for auth_id, agent_id in stale:
        with transaction.atomic(durable=True):
            agent = agent_lock(agent_id=agent_id)
            auth = _authorization(auth_id)
            if auth.hold_state != HoldState.OPEN:
                continue  # resolved meanwhile
            if auth.held_cents:
                entry = _entry(
                    auth=auth,
                    agent=agent,
                    kind=EntryKind.RELEASE,
                    amount=from_cents(max(_outstanding_cents(auth), 0)),
                    currency=str(auth.amount.currency),
                    cap_cents=-auth.held_cents,
                    rate=auth.fx_rate or Decimal(1),
                    memo="hold expired",
                    now=now,
                )
                _post([entry], agent)
            auth.held_cents = 0
            auth.hold_state = HoldState.EXPIRED
            auth.resolved_at = now
            auth.save(update_fields=["held_cents", "hold_state", "resolved_at"])
            expired += 1
    return expired


# --- Helpers -------------------------------------------------------------------------


def _find_authorization(network_id: str) -> tuple[int, uuid.UUID]:
    found = Authorization.objects.filter(network_id=network_id).values("pk", "agent_id").first()
    if found is None or found["agent_id"] is None:
        raise NotFoundError(f"No authorization {network_id} on a known card.")
    return found["pk"], found["agent_id"]


def _authorization(auth_id: int) -> Authorization:
    """Read fresh, under the agent's lock (which guards its authorizations)."""
    return Authorization.objects.select_related("card").get(pk=auth_id)


def _card(card_id: str) -> Card:
    try:
        return card_get(card_id=uuid.UUID(card_id))
    except (ValueError, Card.DoesNotExist) as exc:
        raise NotFoundError(f"No card {card_id}.") from exc


def _replayed(network_txn_id: str | None) -> PostingOutcome | None:
    """The first posting of this network id, when there was one (called under the lock,
    so a concurrent retry has either committed or not begun)."""
    if not network_txn_id:
        return None
    first = LedgerEntry.objects.filter(network_txn_id=network_txn_id).first()
    if first is None:
        return None
    entries = [first]
    if first.authorization is not None:
        # What the same posting wrote beside it (a capture's release).
        entries += LedgerEntry.objects.filter(
            authorization=first.authorization,
            created_at=first.created_at,
            network_txn_id__isnull=True,
        ).exclude(pk=first.pk)
    return PostingOutcome(entries=entries, authorization=first.authorization, replayed=True)


def _check_currency(auth: Authorization, currency: str) -> None:
    if currency != str(auth.amount.currency):
        raise Conflict(
            f"Authorization {auth.network_id} is in {auth.amount.currency}, not {currency}."
        )


def _outstanding_cents(auth: Authorization) -> int:
    """Merchant-currency cents of the authorization neither captured nor reversed."""
    return to_cents(auth.amount.amount) - auth.captured_cents - auth.reversed_cents


def _resolve_if_empty(auth: Authorization, now: datetime) -> None:
    if auth.held_cents == 0 and auth.hold_state == HoldState.OPEN:
        auth.hold_state = HoldState.CLOSED
        auth.resolved_at = now


def _entry(
    *,
    auth: Authorization | None,
    agent: Agent,
    kind: str,
    amount: Decimal,
    currency: str,
    cap_cents: int,
    rate: Decimal,
    now: datetime,
    card: Card | None = None,
    trace_id: str | None = None,
    effective_at: datetime | None = None,
    flag: str = "",
    network_txn_id: str | None = None,
    memo: str = "",
) -> LedgerEntry:
    """One entry. What settles a hold counts at the authorization's time (so a late
    capture lands in the window of the purchase) and carries its card and trace."""
    card = card or (auth.card if auth else None)
    return LedgerEntry(
        kind=kind,
        rail=Rail.CARD,
        flag=flag,
        agent=agent,
        card=card,
        vendor_id=card.vendor_id if card else None,
        authorization=auth,
        network_txn_id=network_txn_id,
        trace_id=auth.trace_id if trace_id is None and auth else (trace_id or ""),
        amount=Money(amount, currency),
        cap_amount=Money(from_cents(cap_cents), agent.policy.currency),
        cap_cents=cap_cents,
        fx_rate=rate,
        memo=memo,
        created_at=now,
        effective_at=effective_at or (auth.decided_at if auth else now),
    )


def _post(entries: list[LedgerEntry], agent: Agent) -> None:
    """Write ledger entries and add them to the spend counters, in the caller's transaction."""
    LedgerEntry.objects.bulk_create(entries)
    zone = agent_month_time_zone(agent=agent)
    with connection.cursor() as cursor:
        sql.counters_add(
            cursor,
            (
                sql.Posting(
                    agent_id=agent.pk,
                    card_id=entry.card_id,
                    vendor_id=entry.vendor_id,
                    trace_id=entry.trace_id,
                    currency=agent.policy.currency,
                    month_time_zone=zone,
                    effective_at=entry.effective_at,
                    cents=entry.cap_cents,
                    is_hold=entry.kind == EntryKind.HOLD,
                )
                for entry in entries
            ),
        )
