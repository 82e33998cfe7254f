"""The money-aware authorization and the lifecycle of what it approves.

Every function here that moves money runs in one durable transaction that first locks
the agent row (and, for a trace with a cap, the trace's budget row), in that order. On
SQLite, IMMEDIATE transactions serialize writers instead. The decision never waits on
Redis, Celery or Slack.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import convert_down, convert_up, from_cents, to_cents
from agentwallet.lib.timewindows import day_end, month_bounds
from approvals.services import (
    DeclineContext,
    approval_request_for_decline,
    bumps_by_scope,
    warnings_queue,
)
from cards.models import Card, CardEvent, CardEventKind, CardStatus
from ledger import decision_sql
from ledger.counters import (
    Posting,
    counter_rows,
    counters_add,
    decision_spend_of,
    decision_spend_params,
    month_start_utc,
)
from ledger.fx import FxQuote, fx_quote
from ledger.models import (
    Authorization,
    Decision,
    EntryFlag,
    EntryKind,
    HoldState,
    LedgerEntry,
    Rail,
)
from policies import rules
from policies.models import Policy
from wallets.models import Agent


class NotFoundError(LookupError):
    """The network referred to something we do not know (answers 404)."""


@dataclass(frozen=True)
class AuthorizationRequest:
    network_id: str
    card_id: str
    amount: Decimal  # merchant currency, quantized to the cent
    currency: str
    merchant_mcc: str
    merchant_name: str = ""
    merchant_network_id: str = ""
    merchant_country: str = ""
    trace_id: str = ""


@dataclass(frozen=True)
class Decided:
    """What the network is told about one decided authorization (the decision path
    builds no model instances: they cost more CPU than its SQL)."""

    id: int
    network_id: str
    decision: str
    reason: str
    trace_id: str
    cap_amount: Money | None
    fx_rate: Decimal | None
    fx_rate_date: date | None
    cap_scope: str
    cap_limit: Money | None
    cap_remaining: Money | None
    approval_request_id: int | None

    @classmethod
    def of(cls, auth: Authorization) -> Decided:
        return cls(
            id=auth.pk,
            network_id=auth.network_id,
            decision=auth.decision,
            reason=auth.reason,
            trace_id=auth.trace_id,
            cap_amount=auth.cap_amount,
            fx_rate=auth.fx_rate,
            fx_rate_date=auth.fx_rate_date,
            cap_scope=auth.cap_scope,
            cap_limit=auth.cap_limit,
            cap_remaining=auth.cap_remaining,
            approval_request_id=auth.approval_request_id,
        )


@dataclass(frozen=True)
class AuthorizationOutcome:
    decided: Decided
    replayed: bool = False

    @cached_property
    def authorization(self) -> Authorization:
        """The stored row (one query; the network's answer needs only `decided`)."""
        return Authorization.objects.get(pk=self.decided.id)


@dataclass(frozen=True, slots=True)
class _SpendKey:
    """What a decision's spend read depends on, given the card's facts."""

    agent_id: uuid.UUID
    card_id: uuid.UUID
    vendor_id: int
    trace_id: str
    month_start: datetime
    currency: str
    locks_trace: bool

    @classmethod
    def of(
        cls, facts: decision_sql.Facts, request: AuthorizationRequest, now: datetime
    ) -> _SpendKey:
        # Trace attribution: the request's own, the card's bound trace, the agent's context.
        trace_id = request.trace_id or facts.card_trace_id or facts.active_trace_at(now)
        return cls(
            agent_id=facts.agent_id,
            card_id=facts.card_id,
            vendor_id=facts.vendor_id,
            trace_id=trace_id,
            month_start=month_start_utc(now, facts.time_zone),
            currency=facts.currency,
            # Unattributed spend has no trace budget to draw on.
            locks_trace=bool(trace_id) and facts.per_trace_cents is not None,
        )

    def params(self, now: datetime) -> dict[str, Any]:
        return decision_spend_params(
            agent_id=self.agent_id,
            card_id=self.card_id,
            vendor_id=self.vendor_id,
            trace_id=self.trace_id,
            month_start=self.month_start,
            currency=self.currency,
            now=now,
        )


# The facts this process last read for each card: a guess at what the next decision on
# the card will read, so that on PostgreSQL its spend read can travel with the lock in
# one round trip. A guess is only ever compared with the facts read under the lock.
_facts_seen: dict[str, decision_sql.Facts] = {}
_FACTS_SEEN_MAX = 20_000


class _WrongTraceLocked(Exception):
    """The guess locked another trace than the decision needs: start again, unguessed
    (taking a second trace lock could deadlock with a decision doing the opposite)."""


def _post(entries: list[LedgerEntry], policy: Policy) -> None:
    """Write ledger entries and add them to the spend counters, in the caller's transaction."""
    LedgerEntry.objects.bulk_create(entries)
    counters_add(
        Posting(
            agent_id=entry.agent_id,
            card_id=entry.card_id,
            vendor_id=entry.vendor_id,
            trace_id=entry.trace_id,
            currency=policy.currency,
            time_zone=policy.time_zone,
            effective_at=entry.effective_at,
            cents=entry.cap_cents,
            is_hold=entry.kind == EntryKind.HOLD,
        )
        for entry in entries
    )


def _entry(
    *,
    kind: str,
    auth: Authorization | None,
    agent: Agent,
    card: Card | None,
    amount: Decimal,
    currency: str,
    cap_cents: int,
    policy: Policy,
    rate: Decimal,
    trace_id: str,
    now: datetime,
    effective_at: datetime,
    flag: str = "",
    network_txn_id: str | None = None,
    memo: str = "",
) -> LedgerEntry:
    return LedgerEntry(
        kind=kind,
        rail=Rail.CARD,
        flag=flag,
        agent=agent,
        card=card,
        vendor_id=card.vendor_id if card else None,
        authorization=auth,
        network_txn_id=network_txn_id,
        trace_id=trace_id,
        amount=Money(amount, currency),
        cap_amount=Money(from_cents(cap_cents), policy.currency),
        cap_cents=cap_cents,
        fx_rate=rate,
        memo=memo,
        created_at=now,
        effective_at=effective_at,
    )


def _replay(existing: Authorization, request: AuthorizationRequest) -> AuthorizationOutcome:
    same = (
        existing.requested_card_id == request.card_id
        and existing.amount.amount == request.amount
        and str(existing.amount.currency) == request.currency
    )
    if not same:
        raise Conflict(
            f"Authorization {request.network_id} was already decided for a different "
            "card or amount."
        )
    return AuthorizationOutcome(decided=Decided.of(existing), replayed=True)


class _AlreadyDecided(Exception):
    """The network id was decided before (or concurrently): roll back, answer a replay."""


def authorization_decide(
    *, request: AuthorizationRequest, now: datetime | None = None
) -> AuthorizationOutcome:
    """Approve or decline one card authorization, exactly once per network id.

    A replay is found by the insert itself (ON CONFLICT on the unique network id),
    so the common case pays for no lookup of its own.
    """
    now = now or timezone.now()
    try:
        try:
            return _decide(request, now, guess=connection.vendor == "postgresql")
        except _WrongTraceLocked:
            return _decide(request, now, guess=False)
    except _AlreadyDecided:
        return _replay(Authorization.objects.get(network_id=request.network_id), request)


def _money(amount: Decimal | None, currency: str | None) -> Money | None:
    return None if amount is None or currency is None else Money(amount, currency)


def _insert_decided(cursor: Any, row: dict[str, Any]) -> Decided:
    """Insert a declined authorization's row."""
    return _decided(row, decision_sql.insert_authorization(cursor, row))


def _decided(row: dict[str, Any], auth_id: int | None) -> Decided:
    """The decision as written; no id means the network id was taken: decided before."""
    if auth_id is None:
        raise _AlreadyDecided
    return Decided(
        id=auth_id,
        network_id=row["network_id"],
        decision=row["decision"],
        reason=row["reason"],
        trace_id=row["trace_id"],
        cap_amount=_money(row["cap_amount"], row["cap_amount_currency"]),
        fx_rate=row["fx_rate"],
        fx_rate_date=row["fx_rate_date"],
        cap_scope=row["cap_scope"],
        cap_limit=_money(row["cap_limit"], row["cap_limit_currency"]),
        cap_remaining=_money(row["cap_remaining"], row["cap_remaining_currency"]),
        approval_request_id=row["approval_request_id"],
    )


def _decide(request: AuthorizationRequest, now: datetime, *, guess: bool) -> AuthorizationOutcome:
    seen = _facts_seen.get(request.card_id) if guess else None
    guessed = _SpendKey.of(seen, request, now) if seen is not None else None
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        spend_row: tuple[Any, ...] = ()
        if guessed is None:
            facts = decision_sql.lock_and_load(cursor, request.card_id)
        else:
            facts, spend_row = decision_sql.lock_load_and_read(
                cursor,
                request.card_id,
                trace_to_lock=guessed.trace_id if guessed.locks_trace else "",
                spend_params=guessed.params(now),
                now=now,
            )
        # The authorization's columns (see ledger.models.Authorization), declined until
        # the rules approve it.
        row: dict[str, Any] = {
            "network_id": request.network_id,
            "card_id": facts.card_id if facts else None,
            "agent_id": facts.agent_id if facts else None,
            "vendor_id": facts.vendor_id if facts else None,
            "requested_card_id": request.card_id,
            "amount": request.amount,
            "amount_currency": request.currency,
            "cap_amount": None,
            "cap_amount_currency": None,
            "fx_rate": None,
            "fx_rate_date": None,
            "merchant_name": request.merchant_name,
            "merchant_mcc": request.merchant_mcc,
            "merchant_network_id": request.merchant_network_id,
            "merchant_country": request.merchant_country,
            "trace_id": request.trace_id,
            "decision": Decision.DECLINED.value,
            "reason": "",
            "cap_scope": "",
            "cap_limit": None,
            "cap_limit_currency": None,
            "cap_remaining": None,
            "cap_remaining_currency": None,
            "approval_request_id": None,
            "hold_state": HoldState.NONE.value,
            "held_cents": 0,
            "captured_cents": 0,
            "reversed_cents": 0,
            "refunded_cents": 0,
            "decided_at": now,
            "resolved_at": None,
        }
        if facts is None:
            row["reason"] = rules.CARD_NOT_FOUND
            return AuthorizationOutcome(decided=_insert_decided(cursor, row))

        if len(_facts_seen) >= _FACTS_SEEN_MAX:
            _facts_seen.clear()
        _facts_seen[request.card_id] = facts
        key = _SpendKey.of(facts, request, now)
        if key == guessed:  # the row came with the lock
            spend = decision_spend_of(spend_row)
        else:
            trace_locked = guessed is not None and guessed.locks_trace
            if trace_locked and key.locks_trace and guessed.trace_id != key.trace_id:
                raise _WrongTraceLocked
            spend = decision_spend_of(
                decision_sql.read_spend_locked(
                    cursor,
                    key.agent_id,
                    trace_to_lock=key.trace_id if key.locks_trace and not trace_locked else "",
                    spend_params=key.params(now),
                    now=now,
                )
            )
        currency = facts.currency
        trace_id = key.trace_id
        month_start = key.month_start
        row["trace_id"] = trace_id
        quote: FxQuote | None = fx_quote(request.currency, currency)
        cap_cents = None
        if quote is not None:
            cap_cents = to_cents(convert_up(request.amount, quote.rate))
            row["fx_rate"] = quote.rate
            row["fx_rate_date"] = quote.rates_date
            row["cap_amount"] = from_cents(cap_cents)
            row["cap_amount_currency"] = currency
        bumps = (
            bumps_by_scope(agent_id=facts.agent_id, now=now)
            if facts.bumps_valid_until and facts.bumps_valid_until > now
            else {}
        )
        limits = rules.Limits(
            per_authorization_cents=facts.per_authorization_cents,
            velocity_per_hour=facts.velocity_per_hour,
            holds_last_hour=spend.holds_last_hour,
            card=rules.Limit(
                facts.card_cap_cents,
                spend.card_month_cents,
                bumps.get(rules.cap_key(rules.SCOPE_CARD, card_id=facts.card_id), 0),
            ),
            vendor=rules.Limit(
                facts.vendor_cap_cents,
                spend.vendor_month_cents,
                bumps.get(rules.cap_key(rules.SCOPE_VENDOR, vendor_slug=facts.vendor_slug), 0),
            ),
            daily=rules.Limit(facts.daily_cents, spend.day_cents, bumps.get(rules.SCOPE_DAILY, 0)),
            monthly=rules.Limit(
                facts.monthly_cents, spend.month_cents, bumps.get(rules.SCOPE_MONTHLY, 0)
            ),
            # Unattributed spend has no trace budget to draw on.
            trace=rules.Limit(
                facts.per_trace_cents if trace_id else None,
                spend.trace_cents,
                bumps.get(rules.cap_key(rules.SCOPE_TRACE, trace_id=trace_id), 0),
            ),
        )
        decision = rules.decide(
            card=rules.CardFacts(
                status=facts.card_status,
                expires_at=facts.card_expires_at,
                exp_year=facts.exp_year,
                exp_month=facts.exp_month,
                allowed_mccs=facts.allowed_mccs,
                allowed_merchant_ids=facts.allowed_merchant_ids,
            ),
            agent_status=facts.agent_status,
            charge=rules.ChargeFacts(
                mcc=request.merchant_mcc,
                merchant_network_id=request.merchant_network_id,
                cap_cents=cap_cents,
            ),
            limits=limits,
            now=now,
        )

        if decision.approved and cap_cents is not None and quote is not None:
            row["decision"] = Decision.APPROVED.value
            row["hold_state"] = HoldState.OPEN.value
            row["held_cents"] = cap_cents
            buckets = counter_rows(
                Posting(
                    agent_id=facts.agent_id,
                    card_id=facts.card_id,
                    vendor_id=facts.vendor_id,
                    trace_id=trace_id,
                    currency=currency,
                    time_zone=facts.time_zone,
                    effective_at=now,
                    cents=cap_cents,
                    is_hold=True,
                ),
                month_start=month_start,
            )
            crossings = (
                _crossings(facts, limits, trace_id, cap_cents, now)
                if facts.warning_thresholds
                else []
            )
            if not crossings and not facts.single_use and decision_sql.can_commit_inline():
                # The approval is the transaction's only write: it goes with the COMMIT,
                # and the agent's lock is released one round trip sooner.
                auth_id = decision_sql.approve_and_commit(row, buckets)
                return AuthorizationOutcome(decided=_decided(row, auth_id))
            decided = _decided(row, decision_sql.insert_approval(cursor, row, buckets))
            if crossings:
                agent = Agent.objects.select_related("policy").get(pk=facts.agent_id)
                warnings_queue(agent=agent, crossings=crossings, now=now)
            if facts.single_use:
                Card.objects.filter(pk=facts.card_id).update(
                    status=CardStatus.CLOSED, updated_at=now
                )
                CardEvent.objects.create(
                    card_id=facts.card_id,
                    kind=CardEventKind.CLOSED,
                    actor="system:single-use",
                    reason=f"used by {request.network_id}",
                )
            return AuthorizationOutcome(decided=decided)

        row["reason"] = decision.reason
        if decision.scope:
            row["cap_scope"] = decision.scope
            if decision.limit_cents is not None:
                row["cap_limit"] = from_cents(decision.limit_cents)
                row["cap_limit_currency"] = currency
            if decision.remaining_cents is not None:
                row["cap_remaining"] = from_cents(decision.remaining_cents)
                row["cap_remaining_currency"] = currency
        if decision.is_cap_decline and cap_cents is not None:
            approval = approval_request_for_decline(
                agent_id=facts.agent_id,
                decision=decision,
                currency=currency,
                requested_cents=cap_cents,
                card_id=facts.card_id,
                vendor_id=facts.vendor_id,
                vendor_slug=facts.vendor_slug,
                trace_id=trace_id,
                now=now,
                context=DeclineContext(
                    vendor_name=facts.vendor_name,
                    amount=Money(request.amount, request.currency),
                    cap_amount=Money(from_cents(cap_cents), currency),
                    trace_id=trace_id,
                    network_id=request.network_id,
                ),
            )
            row["approval_request_id"] = approval.pk
        return AuthorizationOutcome(decided=_insert_decided(cursor, row))


def _crossings(
    facts: decision_sql.Facts, limits: rules.Limits, trace_id: str, cents: int, now: datetime
) -> list[dict[str, Any]]:
    """The early warnings' crossings: every cap this approval pushes past a threshold.
    Crossing is plain arithmetic; the calendar is looked at only when one happened."""
    thresholds = list(facts.warning_thresholds)
    crossed = [
        (scope, limit, threshold)
        for scope, limit in (
            (rules.SCOPE_DAILY, limits.daily),
            (rules.SCOPE_MONTHLY, limits.monthly),
            (rules.SCOPE_CARD, limits.card),
            (rules.SCOPE_VENDOR, limits.vendor),
            (rules.SCOPE_TRACE, limits.trace),
        )
        for threshold in rules.crossed_thresholds(limit, cents, thresholds)
    ]
    if not crossed:
        return []
    tz = facts.time_zone
    day_start = day_end(now, tz) - timedelta(days=1)
    month_start, month_end = month_bounds(now, tz)
    windows = {
        rules.SCOPE_DAILY: (day_start.date().isoformat(), (day_start, day_end(now, tz))),
        rules.SCOPE_TRACE: ("lifetime", None),
    }
    month_window = (month_start.date().isoformat(), (month_start, month_end))
    crossings = []
    for scope, limit, threshold in crossed:
        window, bounds = windows.get(scope, month_window)
        spent = limit.spent_cents + cents
        projected = None
        if bounds is not None:
            elapsed = (now - bounds[0]) / (bounds[1] - bounds[0])
            if elapsed > 0:
                projected = int(spent / elapsed)
        crossings.append(
            {
                "scope": scope,
                "scope_key": rules.cap_key(
                    scope, card_id=facts.card_id, vendor_slug=facts.vendor_slug, trace_id=trace_id
                ),
                "window": window,
                "threshold": threshold,
                "cap": {
                    "amount": str(from_cents(limit.effective_cap or 0)),
                    "currency": facts.currency,
                },
                "spent": {"amount": str(from_cents(spent)), "currency": facts.currency},
                "projected": None
                if projected is None
                else {"amount": str(from_cents(projected)), "currency": facts.currency},
            }
        )
    return crossings


# --- Lifecycle: capture, reverse, refund, expire -----------------------------------


@dataclass(frozen=True)
class PostingOutcome:
    entries: list[LedgerEntry]
    authorization: Authorization | None
    replayed: bool = False


def _replayed_txn(network_txn_id: str | None) -> PostingOutcome | None:
    if not network_txn_id:
        return None
    first = LedgerEntry.objects.filter(network_txn_id=network_txn_id).first()
    if first is None:
        return None
    entries = (
        [
            first,
            *LedgerEntry.objects.filter(
                authorization=first.authorization,
                created_at=first.created_at,
                network_txn_id__isnull=True,
            ).exclude(pk=first.pk),
        ]
        if first.authorization
        else [first]
    )
    return PostingOutcome(entries=entries, authorization=first.authorization, replayed=True)


def _find_authorization(network_id: str) -> tuple[int, object]:
    found = Authorization.objects.filter(network_id=network_id).values("pk", "agent_id").first()
    if found is None or found["agent_id"] is None:
        raise NotFoundError(f"No authorization {network_id} on a known card.")
    return found["pk"], found["agent_id"]


def _lock_agent(agent_id: object) -> Agent:
    return Agent.objects.select_for_update(of=("self",)).select_related("policy").get(pk=agent_id)


def _lock_with_auth(agent_id: object, auth_id: int) -> tuple[Agent, Authorization]:
    """Lock the agent, then read its authorization fresh (the agent lock guards it)."""
    agent = _lock_agent(agent_id)
    return agent, Authorization.objects.select_related("card").get(pk=auth_id)


def _resolve_if_empty(auth: Authorization, now: datetime, state: str = HoldState.CLOSED) -> None:
    if auth.held_cents == 0 and auth.hold_state == HoldState.OPEN:
        auth.hold_state = state
        auth.resolved_at = now


def _check_currency(auth: Authorization, currency: str) -> None:
    if currency != str(auth.amount.currency):
        raise Conflict(
            f"Authorization {auth.network_id} is in {auth.amount.currency}, not {currency}."
        )


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
    if (replay := _replayed_txn(network_txn_id)) is not None:
        return replay
    auth_id, agent_id = _find_authorization(network_id)
    with transaction.atomic(durable=True):
        agent, auth = _lock_with_auth(agent_id, auth_id)
        _check_currency(auth, currency)
        policy = agent.policy
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
        common = dict(
            auth=auth,
            agent=agent,
            card=auth.card,
            currency=currency,
            policy=policy,
            rate=rate,
            trace_id=auth.trace_id,
            now=now,
            effective_at=auth.decided_at,
        )
        entries = [
            _entry(
                kind=EntryKind.CAPTURE,
                amount=amount,
                cap_cents=capture_cents,
                flag=flag,
                network_txn_id=network_txn_id,
                **common,
            )
        ]
        if released:
            entries.append(
                _entry(
                    kind=EntryKind.RELEASE,
                    amount=from_cents(released),
                    cap_cents=-released,
                    memo="cleared by capture",
                    **common,
                )
            )
        _post(entries, policy)
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
    policy = agent.policy
    quote = fx_quote(currency, policy.currency)
    rate = quote.rate if quote else (auth.fx_rate or Decimal(1))
    cents = to_cents(convert_up(amount, rate))
    entry = _entry(
        kind=EntryKind.CAPTURE,
        auth=auth,
        agent=agent,
        card=auth.card,
        amount=amount,
        currency=currency,
        cap_cents=cents,
        policy=policy,
        rate=rate,
        trace_id=auth.trace_id,
        now=now,
        effective_at=now,
        flag=EntryFlag.FORCE_POST,
        network_txn_id=network_txn_id,
        memo=f"forced after decline: {auth.reason}",
    )
    _post([entry], policy)
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
    if (replay := _replayed_txn(network_txn_id)) is not None:
        return replay
    card = Card.objects.filter(pk=card_id).values("agent_id").first()
    if card is None:
        raise NotFoundError(f"No card {card_id}.")
    with transaction.atomic(durable=True):
        agent = _lock_agent(card["agent_id"])
        card_row = Card.objects.get(pk=card_id)
        policy = agent.policy
        quote = fx_quote(currency, policy.currency)
        rate = quote.rate if quote else Decimal(1)
        trace = trace_id or card_row.trace_id or agent.active_trace_at(now)
        entry = _entry(
            kind=EntryKind.CAPTURE,
            auth=None,
            agent=agent,
            card=card_row,
            amount=amount,
            currency=currency,
            cap_cents=to_cents(convert_up(amount, rate)),
            policy=policy,
            rate=rate,
            trace_id=trace,
            now=now,
            effective_at=now,
            flag=EntryFlag.FORCE_POST,
            network_txn_id=network_txn_id,
            memo="capture without authorization",
        )
        _post([entry], policy)
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
    if (replay := _replayed_txn(network_txn_id)) is not None:
        return replay
    auth_id, agent_id = _find_authorization(network_id)
    with transaction.atomic(durable=True):
        agent, auth = _lock_with_auth(agent_id, auth_id)
        if auth.hold_state != HoldState.OPEN:
            raise Conflict(
                f"Authorization {network_id} holds nothing to reverse ({auth.hold_state})."
            )
        if currency is not None:
            _check_currency(auth, currency)
        rate = auth.fx_rate or Decimal(1)
        outstanding = to_cents(auth.amount.amount) - auth.captured_cents - auth.reversed_cents
        if amount is None or to_cents(amount) >= outstanding:
            released = auth.held_cents  # everything left, so no cent stays held
            merchant_cents = max(outstanding, 0)
        else:
            released = min(auth.held_cents, to_cents(convert_down(amount, rate)))
            merchant_cents = to_cents(amount)
        entry = _entry(
            kind=EntryKind.RELEASE,
            auth=auth,
            agent=agent,
            card=auth.card,
            amount=from_cents(merchant_cents),
            currency=str(auth.amount.currency),
            cap_cents=-released,
            policy=agent.policy,
            rate=rate,
            trace_id=auth.trace_id,
            now=now,
            effective_at=auth.decided_at,
            network_txn_id=network_txn_id,
            memo="reversal",
        )
        _post([entry], agent.policy)
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
    if (replay := _replayed_txn(network_txn_id)) is not None:
        return replay
    card = Card.objects.filter(pk=card_id).values("agent_id").first() if _is_uuid(card_id) else None
    if card is None:
        raise NotFoundError(f"No card {card_id}.")
    auth_row = None
    if authorization_network_id:
        auth_row = (
            Authorization.objects.filter(network_id=authorization_network_id, card_id=card_id)
            .values("pk")
            .first()
        )
        if auth_row is None:
            raise NotFoundError(f"No authorization {authorization_network_id} on that card.")
    with transaction.atomic(durable=True):
        if auth_row is not None:
            agent, auth = _lock_with_auth(card["agent_id"], auth_row["pk"])
        else:
            agent, auth = _lock_agent(card["agent_id"]), None
        card_row = Card.objects.get(pk=card_id)
        policy = agent.policy
        if auth is not None:
            _check_currency(auth, currency)
            rate = auth.fx_rate or Decimal(1)
            refundable = max(auth.captured_cents - auth.refunded_cents, 0)
            refunded = min(to_cents(amount), refundable)
            credit = to_cents(convert_down(from_cents(refunded), rate))
            flag = "" if refunded == to_cents(amount) else EntryFlag.UNLINKED_REFUND
            entry = _entry(
                kind=EntryKind.REFUND,
                auth=auth,
                agent=agent,
                card=card_row,
                amount=amount,
                currency=currency,
                cap_cents=-credit,
                policy=policy,
                rate=rate,
                trace_id=auth.trace_id,
                now=now,
                effective_at=auth.decided_at,
                flag=flag,
                network_txn_id=network_txn_id,
                memo="refund",
            )
            auth.refunded_cents += refunded
            auth.save(update_fields=["refunded_cents"])
        else:
            quote = fx_quote(currency, policy.currency)
            entry = _entry(
                kind=EntryKind.REFUND,
                auth=None,
                agent=agent,
                card=card_row,
                amount=amount,
                currency=currency,
                cap_cents=0,
                policy=policy,
                rate=quote.rate if quote else Decimal(1),
                trace_id=card_row.trace_id,
                now=now,
                effective_at=now,
                flag=EntryFlag.UNLINKED_REFUND,
                network_txn_id=network_txn_id,
                memo="refund without a matching capture",
            )
        _post([entry], policy)
        return PostingOutcome(entries=[entry], authorization=auth)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


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
            agent, auth = _lock_with_auth(agent_id, auth_id)
            if auth.hold_state != HoldState.OPEN:
                continue  # resolved meanwhile
            released = auth.held_cents
            if released:
                _post(
                    [
                        _entry(
                            kind=EntryKind.RELEASE,
                            auth=auth,
                            agent=agent,
                            card=auth.card,
                            amount=from_cents(
                                max(
                                    to_cents(auth.amount.amount)
                                    - auth.captured_cents
                                    - auth.reversed_cents,
                                    0,
                                )
                            ),
                            currency=str(auth.amount.currency),
                            cap_cents=-released,
                            policy=agent.policy,
                            rate=auth.fx_rate or Decimal(1),
                            trace_id=auth.trace_id,
                            now=now,
                            effective_at=auth.decided_at,
                            memo="hold expired",
                        )
                    ],
                    agent.policy,
                )
            auth.held_cents = 0
            auth.hold_state = HoldState.EXPIRED
            auth.resolved_at = now
            auth.save(update_fields=["held_cents", "hold_state", "resolved_at"])
            expired += 1
    return expired
