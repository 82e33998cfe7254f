"""Stripe Issuing's events, read into the ledger's own services.

`issuing_authorization.request` is decided by `authorization_decide`, exactly as a
request to /api/network/authorizations (same rules, ledger entry, idempotency on the
authorization id, approval request on a cap decline). What follows is applied with the
postings every network uses, each once: an authorization's changes by the event's id,
a transaction by its own id (so the same transaction in two events counts once).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cards.issuers.stripe import UnsupportedCurrency, from_minor
from cards.models import Card
from ledger.models import Authorization, Decision, HoldState
from ledger.network import payload_sha256
from ledger.services.authorization import (
    AuthorizationOutcome,
    AuthorizationRequest,
    Decided,
    authorization_decide,
)
from ledger.services.postings import (
    authorization_capture,
    authorization_expire,
    authorization_increment,
    authorization_record_unasked,
    authorization_reverse,
    capture_without_authorization,
    refund_record,
)
from policies import rules

logger = logging.getLogger("agentwallet.stripe")

# Answers to an authorization request we decline without asking the rules.
INCREMENT_NOT_SUPPORTED = "increment_not_supported"


@dataclass(frozen=True)
class RequestAnswer:
    """What Stripe is told about one authorization request."""

    approved: bool
    reason: str
    decided: Decided | None = None

    def metadata(self) -> dict[str, str]:
        """Stripe keeps it on the authorization: strings only."""
        decided = self.decided
        meta = {"agentwallet_decision": "approved" if self.approved else "declined"}
        if self.reason:
            meta["agentwallet_reason"] = self.reason
        if decided is not None:
            if decided.authorization_id is not None:
                meta["agentwallet_authorization_id"] = str(decided.authorization_id)
            if decided.cap is not None:
                meta["agentwallet_cap_scope"] = decided.cap.scope
            if decided.approval_id is not None:
                meta["agentwallet_approval_id"] = str(decided.approval_id)
            if decided.trace_id:
                meta["agentwallet_trace_id"] = decided.trace_id
        return meta


def our_card_id(stripe_card_id: str) -> str | None:
    """Our card for Stripe's card id (None: not one of ours)."""
    found = (
        Card.objects.filter(issuer="stripe", issuer_card_id=stripe_card_id)
        .values_list("pk", flat=True)
        .first()
    )
    return None if found is None else str(found)


def _card_ref(obj: dict[str, Any]) -> str:
    card = obj.get("card")
    return str(card.get("id", "")) if isinstance(card, dict) else str(card or "")


def authorization_request_answer(auth: dict[str, Any]) -> RequestAnswer:
    """Decide Stripe's `issuing_authorization.request` with our rules."""
    pending = auth.get("pending_request") or {}
    if auth.get("approved") or (auth.get("amount") or 0) > 0:
        # Stripe asks again about an authorization it holds already: an increment. We
        # decide purchases, not increments of them; declining keeps the hold as approved.
        return RequestAnswer(approved=False, reason=INCREMENT_NOT_SUPPORTED)
    merchant = auth.get("merchant_data") or {}
    currency = str(pending.get("merchant_currency") or auth.get("merchant_currency") or "")
    try:
        amount = from_minor(int(pending["merchant_amount"]), currency)
    except (KeyError, TypeError, ValueError, UnsupportedCurrency):
        return RequestAnswer(approved=False, reason=rules.CURRENCY_NOT_SUPPORTED)
    stripe_card = _card_ref(auth)
    request = AuthorizationRequest(
        network_id=str(auth["id"]),
        card_id=our_card_id(stripe_card) or stripe_card,
        amount=amount,
        currency=currency.upper(),
        merchant_mcc=str(merchant.get("category_code") or "")[:4],
        merchant_name=str(merchant.get("name") or "")[:200],
        merchant_network_id=str(merchant.get("network_id") or "")[:64],
        merchant_country=str(merchant.get("country") or "")[:2],
        # The same authorization asked again with the same purchase is the same request.
        payload_sha256=payload_sha256(
            {"card": stripe_card, "pending_request": pending, "merchant_data": merchant}
        ),
    )
    outcome: AuthorizationOutcome = authorization_decide(request=request)
    decided = outcome.decided
    return RequestAnswer(
        approved=decided.decision == Decision.APPROVED,
        reason=decided.reason,
        decided=decided,
    )


def event_apply(event: dict[str, Any]) -> str:
    """Apply one of Stripe's asynchronous events; returns what was done (for the log).
    Unknown types are acknowledged and ignored."""
    kind = str(event.get("type", ""))
    obj = (event.get("data") or {}).get("object") or {}
    previous = (event.get("data") or {}).get("previous_attributes") or {}
    if kind in ("issuing_authorization.created", "issuing_authorization.updated"):
        return _authorization_changed(str(event["id"]), obj, previous)
    if kind == "issuing_transaction.created":
        return _transaction_created(obj)
    return "ignored"


def _authorization_changed(event_id: str, auth: dict[str, Any], previous: dict[str, Any]) -> str:
    network_id = str(auth["id"])
    ours = Authorization.objects.filter(network_id=network_id).first()
    if ours is None:
        return _record_unasked(auth)
    approved = bool(auth.get("approved"))
    status = str(auth.get("status", ""))
    currency = str(auth.get("merchant_currency", "")).upper()
    if ours.decision == Decision.APPROVED and not approved:
        # Stripe declined what we approved (our answer came too late, or its own checks):
        # the hold we wrote was never made.
        if ours.hold_state == HoldState.OPEN:
            authorization_reverse(network_id=network_id, network_txn_id=event_id)
            return "released: declined at Stripe"
        return "nothing: declined at Stripe, hold resolved already"
    if ours.decision == Decision.DECLINED:
        if approved:  # a capture will follow: recorded as forced, flagged
            logger.warning("Stripe approved %s, which we declined", network_id)
            return "nothing: approved at Stripe, declined here (flagged when captured)"
        return "nothing: declined on both sides"
    if status in ("reversed", "expired"):
        if ours.hold_state != HoldState.OPEN:
            return f"nothing: {status}, hold resolved already"
        if status == "expired":
            authorization_expire(network_id=network_id, network_txn_id=event_id)
        else:
            authorization_reverse(network_id=network_id, network_txn_id=event_id)
        return f"released: {status}"
    if "merchant_amount" in previous and status == "pending":
        was, now = int(previous["merchant_amount"]), int(auth.get("merchant_amount") or 0)
        if now < was:
            authorization_reverse(
                network_id=network_id,
                amount=from_minor(was - now, currency),
                currency=currency,
                network_txn_id=event_id,
            )
            return "released: partial reversal"
        if now > was:
            authorization_increment(
                network_id=network_id,
                amount=from_minor(now - was, currency),
                currency=currency,
                network_txn_id=event_id,
            )
            return "held: increment"
    return "nothing: as recorded"


def _record_unasked(auth: dict[str, Any]) -> str:
    """An authorization Stripe decided without our webhook, as Stripe decided it."""
    card_id = our_card_id(_card_ref(auth))
    if card_id is None:
        return "ignored: not our card"
    approved = bool(auth.get("approved"))
    history = auth.get("request_history") or [{}]
    minor = auth.get("merchant_amount") if approved else history[-1].get("merchant_amount")
    currency = str(auth.get("merchant_currency") or history[-1].get("merchant_currency") or "")
    try:
        amount = from_minor(int(minor or 0), currency)
    except (TypeError, ValueError, UnsupportedCurrency):
        return f"ignored: amount {minor} {currency}"
    if amount <= 0:
        return "ignored: no amount"
    merchant = auth.get("merchant_data") or {}
    recorded = authorization_record_unasked(
        network_id=str(auth["id"]),
        card_id=card_id,
        amount=amount,
        currency=currency.upper(),
        approved=approved,
        holds=auth.get("status") == "pending",
        merchant_mcc=str(merchant.get("category_code") or ""),
        merchant_name=str(merchant.get("name") or ""),
        merchant_network_id=str(merchant.get("network_id") or ""),
        merchant_country=str(merchant.get("country") or ""),
    )
    if recorded is None:
        return "nothing: recorded before"
    return "recorded: approved at Stripe" if approved else "recorded: declined at Stripe"


def _transaction_created(txn: dict[str, Any]) -> str:
    card_id = our_card_id(_card_ref(txn))
    if card_id is None:
        return "ignored: not our card"
    currency = str(txn.get("merchant_currency", "")).upper()
    amount = from_minor(abs(int(txn["merchant_amount"])), currency)
    if amount == Decimal(0):
        return "ignored: no amount"
    auth_id = str(txn.get("authorization") or "")
    known = bool(auth_id) and Authorization.objects.filter(network_id=auth_id).exists()
    digest = payload_sha256(
        {"id": txn["id"], "amount": txn["merchant_amount"], "type": txn["type"]}
    )
    if txn.get("type") == "refund":
        refund_record(
            card_id=card_id,
            amount=amount,
            currency=currency,
            network_txn_id=str(txn["id"]),
            authorization_network_id=auth_id if known else None,
            payload_sha256=digest,
        )
        return "refund"
    if known:
        authorization_capture(
            network_id=auth_id,
            amount=amount,
            currency=currency,
            network_txn_id=str(txn["id"]),
            payload_sha256=digest,
        )
        return "capture"
    capture_without_authorization(
        card_id=card_id,
        amount=amount,
        currency=currency,
        network_txn_id=str(txn["id"]),
        network_id=auth_id,
        payload_sha256=digest,
    )
    return "capture: forced, no authorization"
