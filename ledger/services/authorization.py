"""The money-aware authorization: approve or decline one card charge, exactly once.

`authorization_decide` is the whole decision, top to bottom. Its statements are in
`ledger/sql.py` and its rules, pure, in `policies/rules.py`. Captures, reversals, refunds
and expiry of what it approves are in `ledger/services/postings.py`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Protocol

from django.db import connection, transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.db import deadline
from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import convert_up, from_cents, to_cents
from agentwallet.lib.timewindows import day_end, month_bounds
from approvals.selectors import bumps_by_scope
from approvals.services import DeclineContext, approval_request_for_decline, warnings_queue
from cards.services import card_close_after_use, card_merchant_learn
from ledger import sql
from ledger.fx import FxQuote, fx_quote, fx_rates_age
from ledger.models import SYSTEM_UNAVAILABLE, Authorization, Decision, HoldState
from policies import rules
from wallets.selectors import agent_get


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization as the network asks for it."""

    network_id: str
    card_id: str
    amount: Decimal  # merchant currency, quantized to the cent
    currency: str
    merchant_mcc: str
    merchant_name: str = ""
    merchant_network_id: str = ""
    merchant_country: str = ""
    trace_id: str = ""
    # SHA-256 of the request as sent (ledger.network.payload_sha256): the same network
    # id with another payload is a conflict. Empty: compared field by field instead.
    payload_sha256: str = ""


@dataclass(frozen=True)
class CapStop:
    """The cap that declined a charge, so that an agent stops instead of retrying."""

    scope: str
    limit: Money | None
    remaining: Money | None


@dataclass(frozen=True)
class Decided:
    """What the network is told about one decided authorization."""

    authorization_id: int | None  # None: nothing could be recorded (system_unavailable)
    network_id: str
    decision: str
    reason: str
    trace_id: str
    cap_amount: Money | None  # the charge in the cap currency
    fx_rate: Decimal | None
    fx_rate_date: date | None
    cap: CapStop | None
    approval_id: int | None
    merchant_lock: str = ""  # for merchant_not_allowed: which lock stopped it

    @property
    def fx_rate_stale(self) -> bool:
        """The charge was converted at a rate older than AGENTWALLET_FX_MAX_AGE_DAYS."""
        return self.fx_rate_date is not None and fx_rates_age(self.fx_rate_date).stale

    @classmethod
    def of(cls, auth: Authorization) -> Decided:
        return cls(
            authorization_id=auth.pk,
            network_id=auth.network_id,
            decision=auth.decision,
            reason=auth.reason,
            trace_id=auth.trace_id,
            cap_amount=auth.cap_amount,
            fx_rate=auth.fx_rate,
            fx_rate_date=auth.fx_rate_date,
            cap=CapStop(auth.cap_scope, auth.cap_limit, auth.cap_remaining)
            if auth.cap_scope
            else None,
            approval_id=auth.approval_request_id,
            merchant_lock=auth.merchant_lock,
        )

    @classmethod
    def unavailable(cls, *, network_id: str) -> Decided:
        """Failing closed: the decline when the database cannot decide."""
        return cls(
            authorization_id=None,
            network_id=network_id,
            decision=Decision.DECLINED.value,
            reason=SYSTEM_UNAVAILABLE,
            trace_id="",
            cap_amount=None,
            fx_rate=None,
            fx_rate_date=None,
            cap=None,
            approval_id=None,
        )


@dataclass(frozen=True)
class AuthorizationOutcome:
    decided: Decided
    replayed: bool = False

    @cached_property
    def authorization(self) -> Authorization:
        """The stored row (one query; the network's answer needs only `decided`)."""
        return Authorization.objects.get(pk=self.decided.authorization_id)


class _AlreadyDecided(Exception):
    """The network id was taken: decided before, or by a replay that raced us."""


def authorization_decide(
    *, request: AuthorizationRequest, now: datetime | None = None
) -> AuthorizationOutcome:
    """Approve or decline one card authorization, once per network id.

    One durable transaction: lock the card's agent row (and the trace's budget row),
    read spend after the locks, so that every decision committed before counts, apply
    the rules, write the authorization (with its hold and counters when approved). Two
    decisions racing for the last dollar of a cap take turns on the agent's row. A
    replay is found by the insert itself, its network id being unique.
    """
    now = now or timezone.now()
    try:
        with transaction.atomic(durable=True), connection.cursor() as cursor:
            deadline.transaction_timeouts(cursor)  # under a network request's deadline
            # 1. The card, its agent (locked), vendor and policy.
            facts = sql.card_facts_lock(
                cursor, card_id=request.card_id, network_id=request.network_id
            )
            if facts is not None and facts.event_id_taken:
                raise Conflict(
                    f"Network id {request.network_id} is a capture's, reversal's "
                    "or refund's already; an authorization needs its own."
                )
            if facts is None:
                row = _authorization_row(request, None, trace_id=request.trace_id, now=now)
                row["reason"] = rules.CARD_NOT_FOUND
                return _written(row, sql.authorization_insert(cursor, row))

            # 2. The trace: the request's own, else the card's bound one, else the agent's
            # context. A trace with a cap is shared by every agent: lock its row too.
            trace_id = request.trace_id or facts.card_trace_id or facts.active_trace_at(now)
            trace_capped = bool(trace_id) and facts.per_trace_cap_cents is not None
            if trace_capped:
                sql.trace_lock(cursor, trace_id=trace_id, now=now)

            # 3. Spend, read under the locks.
            spend = sql.spend_read(
                cursor,
                agent_id=facts.agent_id,
                currency=facts.currency,
                month_time_zone=facts.month_time_zone,
                now=now,
                card_ids=[facts.card_id],
                vendor_ids=[facts.vendor_id],
                trace_ids=[trace_id] if trace_capped else [],
            )

            # 4. The rules, on the charge converted into the cap currency (rounded up).
            quote = fx_quote(request.currency, facts.currency)
            cap_cents = None if quote is None else to_cents(convert_up(request.amount, quote.rate))
            limits = _limits(facts, spend, trace_id if trace_capped else "", now)
            card = rules.CardFacts(
                status=facts.card_status,
                expires_at=facts.card_expires_at,
                exp_year=facts.exp_year,
                exp_month=facts.exp_month,
                allowed_mccs=facts.allowed_mccs,
                allowed_merchant_ids=facts.allowed_merchant_ids,
                learned_merchant_id=facts.learned_merchant_id,
                merchant_lock=facts.merchant_lock,
            )
            charge = rules.ChargeFacts(
                mcc=request.merchant_mcc,
                merchant_network_id=request.merchant_network_id,
                cap_cents=cap_cents,
                merchant_name=request.merchant_name,
            )
            decision = rules.decide(
                card=card, agent_status=facts.agent_status, charge=charge, limits=limits, now=now
            )
            # The card's first approved charge locks it to its merchant. (The facts were
            # read before the lock: a first charge committed meanwhile may have locked it
            # to another merchant, which declines this one.)
            learn = rules.merchant_id_to_learn(card, charge) if decision.approved else ""
            if learn and not card_merchant_learn(card_id=facts.card_id, merchant_id=learn):
                decision = rules.RuleDecision(
                    approved=False,
                    reason=rules.MERCHANT_NOT_ALLOWED,
                    merchant_lock=rules.LOCK_LEARNED_MERCHANT_ID,
                )

            # 5. The write.
            row = _authorization_row(
                request, facts, trace_id=trace_id, now=now, quote=quote, cap_cents=cap_cents
            )
            if decision.approved and cap_cents is not None:
                row |= {"decision": Decision.APPROVED.value, "hold_state": HoldState.OPEN.value}
                row["held_cents"] = cap_cents
                auth_id = sql.approval_insert(
                    cursor, row, _hold_posting(facts, trace_id, cap_cents, now)
                )
                if auth_id is None:
                    raise _AlreadyDecided
                if crossings := _crossings(facts, limits, trace_id, cap_cents, now):
                    warnings_queue(
                        agent=agent_get(agent_id=facts.agent_id), crossings=crossings, now=now
                    )
                if facts.single_use:
                    card_close_after_use(card_id=facts.card_id, used_by=request.network_id)
                return _written(row, auth_id)

            row["reason"] = decision.reason
            row["merchant_lock"] = decision.merchant_lock
            if decision.scope:
                row |= _cap_stop_columns(decision, facts.currency)
            if decision.is_cap_decline and cap_cents is not None:
                row["approval_request_id"] = approval_request_for_decline(
                    agent_id=facts.agent_id,
                    decision=decision,
                    currency=facts.currency,
                    requested_cents=cap_cents,
                    card_id=facts.card_id,
                    vendor_id=facts.vendor_id,
                    vendor_slug=facts.vendor_slug,
                    trace_id=trace_id,
                    now=now,
                    context=DeclineContext(
                        vendor_name=facts.vendor_name,
                        amount=Money(request.amount, request.currency),
                        cap_amount=Money(from_cents(cap_cents), facts.currency),
                        trace_id=trace_id,
                        network_id=request.network_id,
                    ),
                ).pk
            return _written(row, sql.authorization_insert(cursor, row))
    except _AlreadyDecided:
        return _replay(request)


def _limits(
    facts: sql.CardFacts, spend: sql.Spend, capped_trace: str, now: datetime
) -> rules.Limits:
    """Each cap with what is spent against it and the bumps approved on it."""
    bumps = bumps_in_force(facts, now)
    card_key = rules.cap_key(rules.SCOPE_CARD, card_id=facts.card_id)
    return rules.Limits(
        unverified_charge_cents=facts.unverified_charge_cents,
        per_authorization_cents=facts.per_authorization_cap_cents,
        velocity_per_hour=facts.velocity_per_hour,
        holds_last_hour=spend.holds_last_hour,
        card=rules.Limit(
            facts.card_cap_cents, spend.card_month_cents[facts.card_id], bumps.get(card_key, 0)
        ),
        **spend_limits(facts, spend, bumps, capped_trace),
    )


class CapFacts(Protocol):
    """What a card decision's and an x402 payment's facts share about the caps."""

    agent_id: uuid.UUID
    bumps_valid_until: datetime | None
    vendor_id: int | None
    vendor_slug: str
    vendor_cap_cents: int | None
    daily_cap_cents: int
    monthly_cap_cents: int
    per_trace_cap_cents: int | None


def bumps_in_force(facts: CapFacts, now: datetime) -> dict[str, int]:
    """The agent's approved bumps valid at `now`, by cap key (none to look for when the
    last one lapsed: Agent.bumps_valid_until)."""
    if facts.bumps_valid_until is None or facts.bumps_valid_until <= now:
        return {}
    return bumps_by_scope(agent_id=facts.agent_id, now=now)


def spend_limits(
    facts: CapFacts, spend: sql.Spend, bumps: dict[str, int], capped_trace: str
) -> dict[str, rules.Limit]:
    """The caps cards and x402 share (rules.Limits' vendor, daily, monthly and trace),
    each with what is spent against it and its bump."""
    vendor_key = rules.cap_key(rules.SCOPE_VENDOR, vendor_slug=facts.vendor_slug)
    trace_key = rules.cap_key(rules.SCOPE_TRACE, trace_id=capped_trace)
    return {
        "vendor": rules.Limit(
            facts.vendor_cap_cents,
            spend.vendor_month_cents.get(facts.vendor_id, 0),  # type: ignore[arg-type]
            bumps.get(vendor_key, 0),
        ),
        "daily": rules.Limit(
            facts.daily_cap_cents, spend.day_cents, bumps.get(rules.SCOPE_DAILY, 0)
        ),
        "monthly": rules.Limit(
            facts.monthly_cap_cents, spend.month_cents, bumps.get(rules.SCOPE_MONTHLY, 0)
        ),
        # Unattributed spend has no trace budget to draw on.
        "trace": rules.Limit(
            facts.per_trace_cap_cents if capped_trace else None,
            spend.trace_cents.get(capped_trace, 0),
            bumps.get(trace_key, 0),
        ),
    }


def _authorization_row(
    request: AuthorizationRequest,
    facts: sql.CardFacts | None,
    *,
    trace_id: str,
    now: datetime,
    quote: FxQuote | None = None,
    cap_cents: int | None = None,
) -> dict[str, Any]:
    """The authorization's columns (ledger.models.Authorization), declined until the
    rules approve it. `cap_cents`: the charge in the cap currency, as the rules saw it."""
    cap_amount = None if cap_cents is None else from_cents(cap_cents)
    return {
        "network_id": request.network_id,
        "card_id": facts.card_id if facts else None,
        "agent_id": facts.agent_id if facts else None,
        "vendor_id": facts.vendor_id if facts else None,
        "requested_card_id": request.card_id,
        "amount": request.amount,
        "amount_currency": request.currency,
        "cap_amount": cap_amount,
        "cap_amount_currency": facts.currency if facts and quote else None,
        "fx_rate": quote.rate if quote else None,
        "fx_rate_date": quote.rates_date if quote else None,
        "merchant_name": request.merchant_name,
        "merchant_mcc": request.merchant_mcc,
        "merchant_network_id": request.merchant_network_id,
        "merchant_country": request.merchant_country,
        "trace_id": trace_id,
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
        "merchant_lock": "",
        "request_sha256": request.payload_sha256,
    }


def _cap_stop_columns(decision: rules.RuleDecision, currency: str) -> dict[str, Any]:
    limit, remaining = decision.limit_cents, decision.remaining_cents
    return {
        "cap_scope": decision.scope,
        "cap_limit": None if limit is None else from_cents(limit),
        "cap_limit_currency": None if limit is None else currency,
        "cap_remaining": None if remaining is None else from_cents(remaining),
        "cap_remaining_currency": None if remaining is None else currency,
    }


def _hold_posting(facts: sql.CardFacts, trace_id: str, cents: int, now: datetime) -> sql.Posting:
    return sql.Posting(
        agent_id=facts.agent_id,
        card_id=facts.card_id,
        vendor_id=facts.vendor_id,
        trace_id=trace_id,
        currency=facts.currency,
        month_time_zone=facts.month_time_zone,
        effective_at=now,
        cents=cents,
        is_hold=True,
    )


def _written(row: dict[str, Any], auth_id: int | None) -> AuthorizationOutcome:
    """The decision as written; no id: the network id was taken (decided before)."""
    if auth_id is None:
        raise _AlreadyDecided

    def money(amount: Decimal | None, currency: str | None) -> Money | None:
        return None if amount is None or currency is None else Money(amount, currency)

    return AuthorizationOutcome(
        decided=Decided(
            authorization_id=auth_id,
            network_id=row["network_id"],
            decision=row["decision"],
            reason=row["reason"],
            trace_id=row["trace_id"],
            cap_amount=money(row["cap_amount"], row["cap_amount_currency"]),
            fx_rate=row["fx_rate"],
            fx_rate_date=row["fx_rate_date"],
            cap=CapStop(
                row["cap_scope"],
                money(row["cap_limit"], row["cap_limit_currency"]),
                money(row["cap_remaining"], row["cap_remaining_currency"]),
            )
            if row["cap_scope"]
            else None,
            approval_id=row["approval_request_id"],
            merchant_lock=row["merchant_lock"],
        )
    )


def _replay(request: AuthorizationRequest) -> AuthorizationOutcome:
    """The first answer for this network id, if the request is the same one."""
    existing = Authorization.objects.get(network_id=request.network_id)
    if existing.request_sha256 and request.payload_sha256:
        same = existing.request_sha256 == request.payload_sha256
    else:
        same = (
            existing.requested_card_id == request.card_id
            and existing.amount.amount == request.amount
            and str(existing.amount.currency) == request.currency
            and existing.merchant_mcc == request.merchant_mcc
            and existing.merchant_network_id == request.merchant_network_id
        )
    if not same:
        raise Conflict(
            f"Authorization {request.network_id} was already decided for another payload "
            "(card, amount or merchant)."
        )
    return AuthorizationOutcome(decided=Decided.of(existing), replayed=True)


def _crossings(
    facts: sql.CardFacts, limits: rules.Limits, trace_id: str, cents: int, now: datetime
) -> list[dict[str, Any]]:
    """The early warnings: every cap this approval pushes past one of the policy's
    thresholds (percent of the cap), with the window it is in and a projection."""
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
    zone = facts.month_time_zone
    day_start = day_end(now, zone) - timedelta(days=1)
    month_start, month_end = month_bounds(now, zone)
    windows = {
        rules.SCOPE_DAILY: (day_start.date().isoformat(), (day_start, day_end(now, zone))),
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
