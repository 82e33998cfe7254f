"""Paying one x402 request: decided like a card authorization, recorded, then signed.

`x402_pay` reads the server's 402, picks the one requirement we would pay, and then, in
one transaction under the agent's row lock (the lock its card decisions take), applies
the x402 rules (policies.rules.decide_x402) to its spend, writes the ledger entry and
the payment, and only then signs. A signed EIP-3009 authorization is a bearer instrument
until its valid-before: it counts as spent from signing. `x402_settlement_record` takes
what the server answered; `x402_release_lapsed` gives back, exactly once, the spend of a
payment that was not settled by its valid-before (plus a margin for late reports).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.db import deadline
from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import convert_up, from_cents, round_against_agent, to_cents
from approvals.services import DeclineContext, approval_request_for_decline
from ledger import sql
from ledger.fx import fx_quote
from ledger.models import EntryKind, LedgerEntry, Rail
from ledger.services.authorization import bumps_in_force, spend_limits
from ledger.services.postings import entries_post
from policies import rules
from wallets.models import Agent, WalletStatus, X402Payment, X402PaymentStatus
from wallets.selectors import agent_lock
from wallets.x402 import protocol
from wallets.x402 import sql as x402_sql
from wallets.x402.keys import unseal_private_key, wallet_ensure
from wallets.x402.signing import TransferAuthorization, sign_transfer

# validAfter a little in the past: a facilitator whose clock runs behind ours still
# takes it (the official clients do the same).
_CLOCK_SKEW = timedelta(seconds=600)
_MEMO_LIMIT = 200


@dataclass(frozen=True)
class PayRequest:
    agent_id: uuid.UUID
    idempotency_key: str
    payment_required: Any  # v2's header value (base64) or v1's 402 body
    resource: str
    trace_id: str = ""

    @property
    def sha256(self) -> str:
        body = {
            "payment_required": self.payment_required,
            "resource": self.resource,
            "trace_id": self.trace_id,
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class PayOutcome:
    payment: X402Payment
    header_value: str = ""  # signed payments: the header to retry the request with
    replayed: bool = False


def x402_pay(*, request: PayRequest, now: datetime | None = None) -> PayOutcome:
    """Decide one payment, once per idempotency key; sign it only when approved and in
    the ledger. A 402 that is not x402 raises protocol.MalformedPaymentRequired and
    writes nothing; an unknown agent raises Agent.DoesNotExist; the same key with
    another body raises Conflict.

    The signature is made after the commit, outside the agent's lock, and never stored:
    the same key again signs the same authorization again, which gives the same bytes
    (ECDSA with RFC 6979 nonces is deterministic)."""
    document = protocol.decode_payment_required(request.payment_required)
    choice = protocol.choose_offer(document)
    pay_to = choice.pay_to if isinstance(choice, protocol.Offer) else ""
    now = now or timezone.now()
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        deadline.transaction_timeouts(cursor)
        # 1. The agent's row, the lock its card decisions take: one decision at a time.
        # One statement reads its policy, wallet, month zone, the payee's vendor and
        # whether this key paid already.
        facts = x402_sql.payer_facts_lock(
            cursor,
            agent_id=request.agent_id,
            idempotency_key=request.idempotency_key,
            pay_to=pay_to,
        )
        if facts is None:
            raise Agent.DoesNotExist(f"No agent {request.agent_id}.")
        if facts.paid_with_key is not None:
            payment = _replay(X402Payment.objects.get(pk=facts.paid_with_key), request)
            wallet = (
                None
                if payment.status == X402PaymentStatus.DECLINED
                else _wallet_of(request.agent_id, facts)
            )
            decided = False
        else:
            payment, wallet = _decide(cursor, request, choice, facts, now)
            decided = True
    # Committed: the payment counts. Only now is it signed (declines never are).
    if payment.status == X402PaymentStatus.DECLINED or wallet is None:
        return PayOutcome(payment=payment, replayed=not decided)
    if not isinstance(choice, protocol.Offer):  # the deployment stopped paying its network
        raise Conflict(
            f"Payment {payment.pk} was signed on {payment.network}, which this deployment "
            "no longer pays on (AGENTWALLET_X402_NETWORKS)."
        )
    return PayOutcome(
        payment=payment, header_value=_signed_header(choice, payment, wallet), replayed=not decided
    )


def _decide(
    cursor: Any,
    request: PayRequest,
    choice: protocol.Offer | protocol.Refusal,
    facts: x402_sql.PayerFacts,
    now: datetime,
) -> tuple[X402Payment, tuple[str, str] | None]:
    """Steps 2 to 5, under the agent's lock: the payment as decided and written, and the
    wallet (address, sealed key) to sign it with when approved."""
    payment = X402Payment(
        agent_id=request.agent_id,
        idempotency_key=request.idempotency_key,
        request_sha256=request.sha256,
        x402_version=choice.x402_version,
        resource_url=request.resource,
        decided_at=now,
    )
    if isinstance(choice, protocol.Refusal):
        return _declined(payment, choice.reason), None

    # 2. What is paid, to whom, for which trace; the trace's budget row if capped.
    offer = choice
    trace_id = request.trace_id or facts.active_trace_at(now)
    trace_capped = bool(trace_id) and facts.per_trace_cap_cents is not None
    if trace_capped:
        sql.trace_lock(cursor, trace_id=trace_id, now=now)
    payment.network = offer.network.caip2
    payment.pay_to = offer.pay_to
    payment.atomic_amount = Decimal(offer.atomic_amount)
    payment.trace_id = trace_id
    payment.vendor_id = facts.vendor_id

    # 3. Spend, read under the locks, and the payment in the cap currency (USDC counts
    # as US dollars), rounded up to the cent.
    spend = sql.spend_read(
        cursor,
        agent_id=request.agent_id,
        currency=facts.currency,
        month_time_zone=facts.month_time_zone,
        now=now,
        vendor_ids=[facts.vendor_id] if facts.vendor_id else [],
        trace_ids=[trace_id] if trace_capped else [],
    )
    quote = fx_quote("USD", facts.currency)
    cap_cents = None if quote is None else to_cents(convert_up(offer.amount, quote.rate))
    if quote is not None and cap_cents is not None:
        payment.cap_amount = Money(from_cents(cap_cents), facts.currency)
        payment.fx_rate = quote.rate

    # 4. The rules.
    decision = rules.decide_x402(
        payment=rules.X402Facts(
            agent_status=facts.agent_status,
            # No wallet yet: the first payment makes it, if approved.
            wallet_status=facts.wallet_status or WalletStatus.ACTIVE,
            x402_allowed=facts.x402_allowed,
            per_call_cap_cents=facts.per_call_cap_cents,
            payees=facts.payees,
            pay_to=offer.pay_to,
            cap_cents=cap_cents,
        ),
        limits=rules.Limits(
            **spend_limits(
                facts, spend, bumps_in_force(facts, now), trace_id if trace_capped else ""
            )
        ),
    )
    if not decision.approved or cap_cents is None or quote is None:
        if decision.scope:
            payment.cap_scope = decision.scope
            payment.cap_limit = _money(decision.limit_cents, facts.currency)
            payment.cap_remaining = _money(decision.remaining_cents, facts.currency)
        if decision.is_cap_decline and cap_cents is not None:
            payment.approval_request = _approval_request(
                payment, facts, offer, decision, cap_cents, now
            )
        return _declined(payment, decision.reason), None

    # 5. Approved: the ledger entry (with its counters) and the payment, the
    # authorization it will sign fixed: who pays whom, how much, nonce and window.
    wallet = _wallet_of(request.agent_id, facts)
    payment.status = X402PaymentStatus.SIGNED
    payment.nonce = "0x" + secrets.token_bytes(32).hex()
    payment.valid_after = (now - _CLOCK_SKEW).replace(microsecond=0)
    payment.valid_before = now.replace(microsecond=0) + timedelta(seconds=_validity_seconds(offer))
    payment.header_name = offer.header_name
    entry = LedgerEntry(
        kind=EntryKind.X402_PAYMENT,
        rail=Rail.USDC,
        agent_id=request.agent_id,
        vendor_id=facts.vendor_id,
        trace_id=trace_id,
        network_txn_id=f"x402:{payment.pk}",
        amount=Money(round_against_agent(offer.amount), "USD"),
        cap_amount=Money(from_cents(cap_cents), facts.currency),
        cap_cents=cap_cents,
        fx_rate=quote.rate,
        memo=_memo(offer, request.resource),
        created_at=now,
        effective_at=now,
    )
    posting = sql.Posting(
        agent_id=request.agent_id,
        card_id=None,
        vendor_id=facts.vendor_id,
        trace_id=trace_id,
        currency=facts.currency,
        month_time_zone=facts.month_time_zone,
        effective_at=now,
        cents=cap_cents,
        is_hold=False,
    )
    if connection.vendor == "postgresql":
        x402_sql.payment_insert(cursor, entry, payment, posting)
    else:  # SQLite serializes writers already: the same rows, one statement each
        LedgerEntry.objects.bulk_create([entry])
        sql.counters_add(cursor, [posting])
        payment.entry = entry
        payment.save(force_insert=True)
    return payment, wallet


def _signed_header(offer: protocol.Offer, payment: X402Payment, wallet: tuple[str, str]) -> str:
    """The header value carrying the payment's EIP-3009 authorization, signed."""
    address, sealed_key = wallet
    authorization = TransferAuthorization(
        payer=address,
        pay_to=payment.pay_to,
        value=int(payment.atomic_amount or 0),
        valid_after=int(payment.valid_after.timestamp()),  # type: ignore[union-attr]
        valid_before=int(payment.valid_before.timestamp()),  # type: ignore[union-attr]
        nonce=bytes.fromhex((payment.nonce or "0x")[2:]),
    )
    signature = sign_transfer(unseal_private_key(sealed_key), offer.network, authorization)
    return protocol.payment_header_value(offer, signature, authorization.as_json())


def _wallet_of(agent_id: uuid.UUID, facts: x402_sql.PayerFacts) -> tuple[str, str]:
    """The wallet's address and sealed key: made on the agent's first payment when
    provisioning made none (its policy did not allow x402 then)."""
    if facts.wallet_address is not None and facts.wallet_key is not None:
        return facts.wallet_address, facts.wallet_key
    wallet = wallet_ensure(agent=Agent.objects.get(pk=agent_id))
    return wallet.address, wallet.private_key_encrypted


def _validity_seconds(offer: protocol.Offer) -> int:
    return min(offer.max_timeout_seconds, settings.AGENTWALLET_X402_MAX_VALIDITY_SECONDS)


def _approval_request(
    payment: X402Payment,
    facts: x402_sql.PayerFacts,
    offer: protocol.Offer,
    decision: rules.RuleDecision,
    cap_cents: int,
    now: datetime,
) -> Any:
    """A cap stopped the payment: the lead hears of it as of a card's decline."""
    currency = facts.currency
    return approval_request_for_decline(
        agent_id=payment.agent_id,
        decision=decision,
        currency=currency,
        requested_cents=cap_cents,
        card_id="",
        vendor_id=facts.vendor_id,
        vendor_slug=facts.vendor_slug,
        trace_id=payment.trace_id,
        now=now,
        context=DeclineContext(
            vendor_name=facts.vendor_name or f"x402 {offer.pay_to}",
            amount=Money(round_against_agent(offer.amount), "USD"),
            cap_amount=Money(from_cents(cap_cents), currency),
            trace_id=payment.trace_id,
            network_id=f"x402:{payment.pk}",
        ),
    )


def _declined(payment: X402Payment, reason: str) -> X402Payment:
    payment.status = X402PaymentStatus.DECLINED
    payment.reason = reason
    payment.save(force_insert=True)
    return payment


def _replay(existing: X402Payment, request: PayRequest) -> X402Payment:
    """The payment this key made, if the request is the same one (the same body: the
    same requirement is chosen from it again)."""
    if existing.request_sha256 != request.sha256:
        raise Conflict(
            f"Idempotency-Key {request.idempotency_key!r} was used for another request: "
            "use a new key for a new payment."
        )
    return existing


def _money(cents: int | None, currency: str) -> Money | None:
    return None if cents is None else Money(from_cents(cents), currency)


def _memo(offer: protocol.Offer, resource: str) -> str:
    memo = f"x402 {offer.amount.normalize():f} USDC to {offer.pay_to} for {resource}"
    return memo[:_MEMO_LIMIT]


# --- What the server answered ------------------------------------------------------


def x402_settlement_record(
    *, payment: X402Payment, payment_response: Any, now: datetime | None = None
) -> X402Payment:
    """Record the server's PAYMENT-RESPONSE. A success settles it (with its transaction);
    a failure marks it failed, still counted until its valid-before has passed, as the
    signature could still be settled until then. The same report again changes nothing;
    a report that contradicts an earlier one is a conflict. A success reported after the
    payment was released counts its spend again."""
    settlement = protocol.decode_settlement(payment_response)
    now = now or timezone.now()
    with transaction.atomic():
        agent_lock(agent_id=payment.agent_id)  # postings of the agent take turns
        payment = X402Payment.objects.select_for_update().get(pk=payment.pk)
        status = payment.status
        if status == X402PaymentStatus.DECLINED:
            raise Conflict("This payment was declined: nothing was signed to settle.")
        if status == X402PaymentStatus.SETTLED:
            if settlement.success and settlement.transaction == payment.settlement_transaction:
                return payment
            raise Conflict(f"This payment was settled in {payment.settlement_transaction} already.")
        if not settlement.success:
            if status == X402PaymentStatus.SIGNED:
                payment.status = X402PaymentStatus.FAILED
                payment.settlement_error = settlement.error_reason or "unknown"
                payment.settlement_reported_at = now
                payment.save(update_fields=["status", "settlement_error", "settlement_reported_at"])
            return payment  # failed again, or released already: nothing changes
        if status == X402PaymentStatus.RELEASED:
            payment.late_entry = _respend(payment, now)
        payment.status = X402PaymentStatus.SETTLED
        payment.settlement_transaction = settlement.transaction
        payment.settlement_error = ""
        payment.settlement_reported_at = now
        payment.save(
            update_fields=[
                "status",
                "settlement_transaction",
                "settlement_error",
                "settlement_reported_at",
                "late_entry",
            ]
        )
        return payment


def _respend(payment: X402Payment, now: datetime) -> LedgerEntry:
    """A payment released as unsettled turned out settled: its spend counts again."""
    spent = payment.entry
    entry = LedgerEntry(
        kind=EntryKind.X402_PAYMENT,
        rail=Rail.USDC,
        agent=payment.agent,
        vendor_id=spent.vendor_id,
        trace_id=spent.trace_id,
        network_txn_id=f"x402:{payment.pk}:late",
        amount=spent.amount,
        cap_amount=spent.cap_amount,
        cap_cents=spent.cap_cents,
        fx_rate=spent.fx_rate,
        memo=f"settled after its release: {spent.memo}"[:_MEMO_LIMIT],
        created_at=now,
        effective_at=spent.effective_at,
    )
    entries_post([entry], payment.agent)
    return entry


def x402_release_lapsed(*, now: datetime | None = None, limit: int = 500) -> int:
    """Release the spend of every payment not settled by its valid-before plus the
    margin: after valid-before no one can settle it, and a late report had its margin.
    Each exactly once (the row lock, its status and the release entry's unique id).
    Returns how many were released."""
    now = now or timezone.now()
    margin = timedelta(seconds=settings.AGENTWALLET_X402_RELEASE_MARGIN_SECONDS)
    lapsed = list(
        X402Payment.objects.filter(
            status__in=[X402PaymentStatus.SIGNED, X402PaymentStatus.FAILED],
            valid_before__lt=now - margin,
        )
        .order_by("valid_before")
        .values_list("pk", "agent_id")[:limit]
    )
    released = 0
    for payment_id, agent_id in lapsed:
        with transaction.atomic():
            agent = agent_lock(agent_id=agent_id)
            payment = X402Payment.objects.select_for_update().get(pk=payment_id)
            if payment.status not in (X402PaymentStatus.SIGNED, X402PaymentStatus.FAILED):
                continue  # settled or released meanwhile
            spent = payment.entry
            entry = LedgerEntry(
                kind=EntryKind.RELEASE,
                rail=Rail.USDC,
                agent=agent,
                vendor_id=spent.vendor_id,
                trace_id=spent.trace_id,
                network_txn_id=f"x402:{payment.pk}:release",
                amount=spent.amount,
                cap_amount=-spent.cap_amount,
                cap_cents=-spent.cap_cents,
                fx_rate=spent.fx_rate,
                memo=f"released, not settled by its valid-before: {spent.memo}"[:_MEMO_LIMIT],
                created_at=now,
                effective_at=spent.effective_at,
            )
            entries_post([entry], agent)
            payment.status = X402PaymentStatus.RELEASED
            payment.release_entry = entry
            payment.released_at = now
            payment.save(update_fields=["status", "release_entry", "released_at"])
            released += 1
    return released
