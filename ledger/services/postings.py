"""What follows a decision: captures, reversals, refunds and the expiry of holds.

The network has moved this money already, so none of it is declined: it is recorded,
flagged where we did not approve it, and never allowed to create headroom. Each posting
runs in one durable transaction that first locks the agent's row (the lock decisions
take) and only then looks for a replay of its network id, so that concurrent retries of
one event wait for the first and get its answer.

Every event the network sends carries its own id (`network_txn_id` here), unique across
all events: the first use is recorded as a NetworkEvent beside the entries it wrote; the
same id again with the same kind, target and payload answers what the first did and
writes nothing, and anything else with that id is a conflict.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.db import deadline
from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import convert_down, convert_up, from_cents, to_cents
from cards.models import Card
from cards.selectors import card_get
from ledger import sql
from ledger.fx import fx_quote
from ledger.models import (
    ISSUER_DECLINED,
    Authorization,
    Decision,
    EntryFlag,
    EntryKind,
    HoldState,
    LedgerEntry,
    NetworkEvent,
    NetworkEventKind,
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
    # The hold as this posting left it (a replay: as the first posting left it).
    hold_state: str | None = None
    held_cents: int | None = None

    @classmethod
    def of(cls, entries: list[LedgerEntry], auth: Authorization | None) -> PostingOutcome:
        return cls(
            entries=entries,
            authorization=auth,
            hold_state=auth.hold_state if auth else None,
            held_cents=auth.held_cents if auth else None,
        )


@dataclass(frozen=True)
class Event:
    """A posting as the network identifies it: its event id, what it is, the
    authorization it was sent for, and a digest of its payload ("": not compared)."""

    event_id: str
    kind: str
    target: str
    payload_sha256: str = ""


def _event(event_id: str | None, kind: str, target: str, payload_sha256: str) -> Event | None:
    return Event(event_id, kind, target, payload_sha256) if event_id else None


def authorization_capture(
    *,
    network_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str | None = None,
    payload_sha256: str = "",
    now: datetime | None = None,
) -> PostingOutcome:
    """Clear (part of) an authorization. Captures always succeed: partial, several, more
    than held (flagged), or on a declined authorization (a forced post, flagged)."""
    event = _event(network_txn_id, NetworkEventKind.CAPTURE, network_id, payload_sha256)
    return _once(
        event,
        lambda: _capture(network_id, amount, currency, event, now or timezone.now()),
    )


def _capture(
    network_id: str, amount: Decimal, currency: str, event: Event | None, now: datetime
) -> PostingOutcome:
    network_txn_id = event.event_id if event else None
    auth_id, agent_id = _find_authorization(network_id)
    with transaction.atomic(durable=True):
        deadline.transaction_timeouts()  # under a network request's deadline
        agent = agent_lock(agent_id=agent_id)
        if (replay := _replayed(event)) is not None:
            return replay
        auth = _authorization(auth_id)
        _check_currency(auth, currency)
        if auth.decision == Decision.DECLINED:
            return _recorded(
                event,
                agent,
                _force_post(
                    auth=auth,
                    agent=agent,
                    amount=amount,
                    currency=currency,
                    network_txn_id=network_txn_id,
                    now=now,
                ),
                now,
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
        entries_post(entries, agent)
        auth.held_cents -= released
        auth.captured_cents += to_cents(amount)
        _resolve_if_empty(auth, now)
        auth.save(update_fields=["held_cents", "captured_cents", "hold_state", "resolved_at"])
        return _recorded(event, agent, PostingOutcome.of(entries, auth), now)


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
    entries_post([entry], agent)
    auth.captured_cents += to_cents(amount)
    auth.save(update_fields=["captured_cents"])
    return PostingOutcome.of([entry], auth)


def capture_without_authorization(
    *,
    card_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str,
    trace_id: str = "",
    network_id: str = "",
    payload_sha256: str = "",
    now: datetime | None = None,
) -> PostingOutcome:
    """A capture for an authorization we never saw (network stand-in, sent for the
    authorization id `network_id`): a forced post."""
    event = _event(network_txn_id, NetworkEventKind.CAPTURE, network_id, payload_sha256)
    return _once(
        event,
        lambda: _capture_unseen(
            card_id, amount, currency, network_txn_id, trace_id, event, now or timezone.now()
        ),
    )


def _capture_unseen(
    card_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str,
    trace_id: str,
    event: Event | None,
    now: datetime,
) -> PostingOutcome:
    card = _card(card_id)
    with transaction.atomic(durable=True):
        deadline.transaction_timeouts()  # under a network request's deadline
        agent = agent_lock(agent_id=card.agent_id)
        if (replay := _replayed(event)) is not None:
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
        entries_post([entry], agent)
        return _recorded(event, agent, PostingOutcome.of([entry], None), now)


def authorization_reverse(
    *,
    network_id: str,
    amount: Decimal | None = None,
    currency: str | None = None,
    network_txn_id: str | None = None,
    payload_sha256: str = "",
    now: datetime | None = None,
) -> PostingOutcome:
    """Release all (or part) of an open hold, exactly the released amount. A hold
    resolves at most once: reversing a resolved hold is a conflict."""
    event = _event(network_txn_id, NetworkEventKind.REVERSAL, network_id, payload_sha256)
    return _once(
        event,
        lambda: _reverse(network_id, amount, currency, event, now or timezone.now()),
    )


def _reverse(
    network_id: str,
    amount: Decimal | None,
    currency: str | None,
    event: Event | None,
    now: datetime,
) -> PostingOutcome:
    network_txn_id = event.event_id if event else None
    auth_id, agent_id = _find_authorization(network_id)
    with transaction.atomic(durable=True):
        deadline.transaction_timeouts()  # under a network request's deadline
        agent = agent_lock(agent_id=agent_id)
        if (replay := _replayed(event)) is not None:
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
        entries_post([entry], agent)
        auth.held_cents -= released
        auth.reversed_cents += merchant_cents
        _resolve_if_empty(auth, now)
        if merchant_cents >= outstanding:
            auth.held_cents, auth.hold_state, auth.resolved_at = 0, HoldState.CLOSED, now
        auth.save(update_fields=["held_cents", "reversed_cents", "hold_state", "resolved_at"])
        return _recorded(event, agent, PostingOutcome.of([entry], auth), now)


def refund_record(
    *,
    card_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str,
    authorization_network_id: str | None = None,
    payload_sha256: str = "",
    now: datetime | None = None,
) -> PostingOutcome:
    """Money back from a merchant. Linked to a captured authorization it gives back spend,
    up to what was captured there; unlinked it is recorded but creates no headroom."""
    event = _event(
        network_txn_id, NetworkEventKind.REFUND, authorization_network_id or "", payload_sha256
    )
    return _once(
        event,
        lambda: _refund(
            card_id,
            amount,
            currency,
            network_txn_id,
            authorization_network_id,
            event,
            now or timezone.now(),
        ),
    )


def _refund(
    card_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str,
    authorization_network_id: str | None,
    event: Event | None,
    now: datetime,
) -> PostingOutcome:
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
        deadline.transaction_timeouts()  # under a network request's deadline
        agent = agent_lock(agent_id=card.agent_id)
        if (replay := _replayed(event)) is not None:
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
            entries_post([entry], agent)
            return _recorded(event, agent, PostingOutcome.of([entry], None), now)
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
        entries_post([entry], agent)
        auth.refunded_cents += refunded
        auth.save(update_fields=["refunded_cents"])
        return _recorded(event, agent, PostingOutcome.of([entry], auth), now)


def authorization_record_unasked(
    *,
    network_id: str,
    card_id: str,
    amount: Decimal,
    currency: str,
    approved: bool,
    holds: bool,
    merchant_mcc: str = "",
    merchant_name: str = "",
    merchant_network_id: str = "",
    merchant_country: str = "",
    now: datetime | None = None,
) -> Authorization | None:
    """An authorization the issuer decided without asking us: declined by its own
    controls, or approved on its own (a stand-in, a fallback after our answer came too
    late). Recorded once per network id, as it happened: an approval that still `holds`
    holds its amount, flagged as not approved by us. None when it was recorded before."""
    now = now or timezone.now()
    card = _card(card_id)
    with transaction.atomic(durable=True):
        deadline.transaction_timeouts()  # under a network request's deadline
        agent = agent_lock(agent_id=card.agent_id)
        if Authorization.objects.filter(network_id=network_id).exists():
            return None
        quote = fx_quote(currency, agent.policy.currency)
        rate = quote.rate if quote else Decimal(1)
        cap_cents = to_cents(convert_up(amount, rate))
        # The issuer does not order its events: a capture of this authorization that came
        # first was booked as a forced post, and holding its amount too would count it twice.
        captured_first = NetworkEvent.objects.filter(
            target=network_id, kind=NetworkEventKind.CAPTURE
        ).exists()
        holding = approved and holds and not captured_first
        auth = Authorization.objects.create(
            network_id=network_id,
            card=card,
            agent=agent,
            vendor_id=card.vendor_id,
            requested_card_id=card_id,
            amount=Money(amount, currency),
            cap_amount=Money(from_cents(cap_cents), agent.policy.currency) if quote else None,
            fx_rate=quote.rate if quote else None,
            fx_rate_date=quote.rates_date if quote else None,
            merchant_name=merchant_name[:200],
            merchant_mcc=merchant_mcc[:4],
            merchant_network_id=merchant_network_id[:64],
            merchant_country=merchant_country[:2],
            trace_id=card.trace_id or agent.active_trace_at(now),
            decision=Decision.APPROVED if approved else Decision.DECLINED,
            reason="" if approved else ISSUER_DECLINED,
            hold_state=HoldState.OPEN
            if holding
            else (HoldState.CLOSED if approved else HoldState.NONE),
            held_cents=cap_cents if holding else 0,
            decided_at=now,
            resolved_at=None if holding or not approved else now,
        )
        if holding:
            hold = _entry(
                auth=auth,
                agent=agent,
                kind=EntryKind.HOLD,
                amount=amount,
                currency=currency,
                cap_cents=cap_cents,
                rate=rate,
                flag=EntryFlag.FORCE_POST,
                memo="approved by the issuer without asking us",
                now=now,
            )
            entries_post([hold], agent)
        return auth


def authorization_increment(
    *,
    network_id: str,
    amount: Decimal,
    currency: str,
    network_txn_id: str,
    now: datetime | None = None,
) -> PostingOutcome:
    """The issuer raised an open hold on its own (a merchant's incremental
    authorization): the hold grows by `amount`, flagged as not approved by us. Applied
    once per event id (the entry's network_txn_id)."""
    now = now or timezone.now()
    auth_id, agent_id = _find_authorization(network_id)
    with transaction.atomic(durable=True):
        deadline.transaction_timeouts()
        agent = agent_lock(agent_id=agent_id)
        done = list(LedgerEntry.objects.filter(network_txn_id=network_txn_id))
        if done:
            return PostingOutcome(entries=done, authorization=done[0].authorization, replayed=True)
        auth = _authorization(auth_id)
        _check_currency(auth, currency)
        if auth.decision != Decision.APPROVED:
            raise Conflict(f"Authorization {network_id} was declined: it has no hold to raise.")
        rate = auth.fx_rate or Decimal(1)
        cents = to_cents(convert_up(amount, rate))
        entry = _entry(
            auth=auth,
            agent=agent,
            kind=EntryKind.HOLD,
            amount=amount,
            currency=currency,
            cap_cents=cents,
            rate=rate,
            flag=EntryFlag.FORCE_POST,
            network_txn_id=network_txn_id,
            memo="increment approved by the issuer without asking us",
            now=now,
        )
        entries_post([entry], agent)
        auth.amount = Money(auth.amount.amount + amount, currency)
        auth.held_cents += cents
        if auth.hold_state != HoldState.OPEN:
            auth.hold_state, auth.resolved_at = HoldState.OPEN, None
        auth.save(update_fields=["amount", "held_cents", "hold_state", "resolved_at"])
        return PostingOutcome.of([entry], auth)


def authorization_expire(
    *, network_id: str, network_txn_id: str | None = None, now: datetime | None = None
) -> PostingOutcome:
    """The issuer expired an open hold (never captured in its time): all of it released
    and the authorization marked expired, as our own expiry task does."""
    event = _event(network_txn_id, NetworkEventKind.REVERSAL, network_id, "")
    return _once(event, lambda: _expire(network_id, event, now or timezone.now()))


def _expire(network_id: str, event: Event | None, now: datetime) -> PostingOutcome:
    auth_id, agent_id = _find_authorization(network_id)
    with transaction.atomic(durable=True):
        deadline.transaction_timeouts()  # under a network request's deadline
        agent = agent_lock(agent_id=agent_id)
        if (replay := _replayed(event)) is not None:
            return replay
        auth = _authorization(auth_id)
        if auth.hold_state != HoldState.OPEN:
            raise Conflict(
                f"Authorization {network_id} holds nothing to expire ({auth.hold_state})."
            )
        released = _hold_expired(auth, agent, now, "hold expired at the issuer", event)
        return _recorded(event, agent, PostingOutcome.of(released, auth), now)


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
            _hold_expired(auth, agent, now, "hold expired", None)
            expired += 1
    return expired


def _hold_expired(
    auth: Authorization, agent: Agent, now: datetime, memo: str, event: Event | None
) -> list[LedgerEntry]:
    """Release what the open hold still holds and mark it expired (under the agent's lock)."""
    released = []
    if auth.held_cents:
        entry = _entry(
            auth=auth,
            agent=agent,
            kind=EntryKind.RELEASE,
            amount=from_cents(max(_outstanding_cents(auth), 0)),
            currency=str(auth.amount.currency),
            cap_cents=-auth.held_cents,
            rate=auth.fx_rate or Decimal(1),
            network_txn_id=event.event_id if event else None,
            memo=memo,
            now=now,
        )
        entries_post([entry], agent)
        released.append(entry)
    auth.held_cents = 0
    auth.hold_state = HoldState.EXPIRED
    auth.resolved_at = now
    auth.save(update_fields=["held_cents", "hold_state", "resolved_at"])
    return released


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


def _once(event: Event | None, apply: Callable[[], PostingOutcome]) -> PostingOutcome:
    """Apply a posting once. Retries of one event wait on the agent's lock and find the
    first (`_replayed`); the same id sent at once for another agent's authorization
    passes that check and loses the race on the event id's unique index instead."""
    try:
        return apply()
    except IntegrityError:
        if event is None or (replay := _replayed(event)) is None:
            raise
        return replay


def _replayed(event: Event | None) -> PostingOutcome | None:
    """The first answer to this event, when it was applied before (called under the
    lock, so a concurrent retry has either committed or not begun); a conflict when its
    id was used for anything else."""
    if event is None:
        return None
    first = NetworkEvent.objects.filter(event_id=event.event_id).first()
    if first is None:
        if Authorization.objects.filter(network_id=event.event_id).exists():
            raise Conflict(f"Network id {event.event_id} is an authorization's already.")
        return None
    same_payload = not event.payload_sha256 or event.payload_sha256 == first.payload_sha256
    if first.kind != event.kind or first.target != event.target or not same_payload:
        raise Conflict(
            f"Network event {event.event_id} was applied already as a {first.kind}"
            + (f" of authorization {first.target}" if first.target else "")
            + "; the same id cannot carry another event or payload."
        )
    entries = list(LedgerEntry.objects.filter(network_txn_id=event.event_id))
    if entries and first.authorization_id is not None:
        # What the same posting wrote beside it (a capture's release).
        entries += LedgerEntry.objects.filter(
            authorization_id=first.authorization_id,
            created_at=entries[0].created_at,
            network_txn_id__isnull=True,
        ).exclude(pk=entries[0].pk)
    return PostingOutcome(
        entries=entries,
        authorization=first.authorization,
        replayed=True,
        hold_state=first.hold_state or None,
        held_cents=first.held_cents,
    )


def _recorded(
    event: Event | None, agent: Agent, outcome: PostingOutcome, now: datetime
) -> PostingOutcome:
    """Keep the event beside what it wrote, with the hold as it left it."""
    if event is not None:
        NetworkEvent.objects.create(
            event_id=event.event_id,
            kind=event.kind,
            target=event.target,
            payload_sha256=event.payload_sha256,
            agent=agent,
            authorization=outcome.authorization,
            hold_state=outcome.hold_state or "",
            held_cents=outcome.held_cents,
            created_at=now,
        )
    return outcome


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


def entries_post(
    entries: list[LedgerEntry], agent: Agent, *, month_time_zone: str | None = None
) -> None:
    """Write ledger entries and add them to the spend counters, in the caller's
    transaction. `month_time_zone`: the agent's (agent_month_time_zone), if read already."""
    entries_write(
        entries,
        agent_id=agent.pk,
        currency=agent.policy.currency,
        month_time_zone=month_time_zone or agent_month_time_zone(agent=agent),
    )


def entries_write(
    entries: list[LedgerEntry], *, agent_id: uuid.UUID, currency: str, month_time_zone: str
) -> None:
    """entries_post for a caller that read the agent's cap currency and month zone."""
    LedgerEntry.objects.bulk_create(entries)
    with connection.cursor() as cursor:
        sql.counters_add(
            cursor,
            (
                sql.Posting(
                    agent_id=agent_id,
                    card_id=entry.card_id,
                    vendor_id=entry.vendor_id,
                    trace_id=entry.trace_id,
                    currency=currency,
                    month_time_zone=month_time_zone,
                    effective_at=entry.effective_at,
                    cents=entry.cap_cents,
                    is_hold=entry.kind == EntryKind.HOLD,
                )
                for entry in entries
            ),
        )
