"""Stripe Issuing: real virtual cards, through the `stripe` package.

Our rules decide every authorization (the `issuing_authorization.request` webhook,
ledger.stripe_webhook); the spending controls set here are defence in depth that can
only narrow them: the card's merchant categories and its own monthly cap. Stripe's
`monthly` limit runs by calendar month in UTC, ours in the policy's time zone, so near
a month's turn Stripe may decline what we would approve, never the other way round.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import iso18245
import stripe
from django.conf import settings

from agentwallet.lib.money import from_cents
from cards.issuers import (
    CardControls,
    Cardholder,
    IssuedCard,
    IssuerAuthorization,
    IssuerCardState,
    IssuerError,
    IssuerTransaction,
)

logger = logging.getLogger("agentwallet.issuer")

# Stripe's amounts are integers in the currency's smallest unit; these currencies have
# none below the unit (https://docs.stripe.com/currencies#zero-decimal).
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA"}
    | {"PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
# Stripe counts these in thousandths, which our cents cannot hold exactly.
THREE_DECIMAL = frozenset(["BHD", "JOD", "KWD", "OMR", "TND"])

# Our status → Stripe's, and back.
STATUS = {"active": "active", "frozen": "inactive", "closed": "canceled"}
OUR_STATUS = {theirs: ours for ours, theirs in STATUS.items()}

# A Stripe cardholder's name: at most 24 characters, letters, digits and a few marks.
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9 .'-]+")


class UnsupportedCurrency(ValueError):
    """A currency whose minor unit is not a cent or a whole unit."""


def to_minor(amount: Decimal, currency: str) -> int:
    """An exact amount in Stripe's integer units of `currency`."""
    currency = currency.upper()
    if currency in THREE_DECIMAL:
        raise UnsupportedCurrency(currency)
    units = amount if currency in ZERO_DECIMAL else amount * 100
    if units != units.to_integral_value():
        raise ValueError(f"{amount} {currency} is not a whole number of minor units.")
    return int(units)


def from_minor(minor: int, currency: str) -> Decimal:
    """Stripe's integer amount of `currency` as an exact Decimal (two places)."""
    currency = currency.upper()
    if currency in THREE_DECIMAL:
        raise UnsupportedCurrency(currency)
    if currency in ZERO_DECIMAL:
        return Decimal(minor).quantize(Decimal("0.01"))
    return (Decimal(minor) / 100).quantize(Decimal("0.01"))


def stripe_categories(mccs: tuple[str, ...]) -> list[str] | None:
    """Stripe's category names for the card's merchant category codes (the list Stripe
    publishes, as iso18245 ships it). None when any code has none: an allowlist that
    left it out would decline charges our rules approve, so Stripe gets no allowlist."""
    categories = []
    for mcc in mccs:
        try:
            code = iso18245.get_mcc(mcc).stripe_code
        except iso18245.MCCNotFound:
            code = ""
        if not code:
            logger.warning("MCC %s has no Stripe category: the card gets no allowlist", mcc)
            return None
        categories.append(code)
    return sorted(set(categories))


def spending_controls(controls: CardControls) -> dict[str, Any]:
    """Stripe's `spending_controls` for our card controls ("" unsets a field)."""
    categories = stripe_categories(controls.allowed_mccs) if controls.allowed_mccs else None
    limits: Any = ""
    if controls.monthly_cap_cents is not None:
        cap = from_cents(controls.monthly_cap_cents)
        limits = [{"amount": to_minor(cap, controls.currency), "interval": "monthly"}]
    return {"allowed_categories": categories or "", "spending_limits": limits}


def cardholder_name(cardholder: Cardholder) -> str:
    name = _NAME_UNSAFE.sub(" ", cardholder.name or cardholder.email.split("@")[0])
    return " ".join(name.split())[:24].strip() or "AgentWallet team"


@cache
def _client(api_key: str, api_base: str, timeout: float) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        stripe_version=settings.STRIPE_API_VERSION,
        max_network_retries=2,  # POSTs carry an idempotency key, so a retry is safe
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def client() -> stripe.StripeClient:
    """The Stripe client for the current settings (one per key, base and timeout)."""
    if not settings.STRIPE_API_KEY:
        raise IssuerError("STRIPE_API_KEY is not set.")
    return _client(
        settings.STRIPE_API_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT_SECONDS
    )


@contextmanager
def stripe_errors(what: str) -> Iterator[None]:
    """Turn the library's errors into IssuerError; the message says what Stripe said
    (never the key)."""
    try:
        yield
    except stripe.StripeError as exc:
        logger.warning("Stripe refused to %s: %s", what, exc)
        raise IssuerError(f"Stripe could not {what}: {exc.user_message or exc}") from exc


class StripeIssuer:
    name = "stripe"

    def cardholder_create(self, *, cardholder: Cardholder) -> str:
        params: dict[str, Any] = {
            "type": "company",
            "name": cardholder_name(cardholder),
            "email": cardholder.email,
            "billing": {"address": settings.STRIPE_CARDHOLDER_ADDRESS},
            "metadata": {"agentwallet_principal_id": cardholder.ref},
        }
        with stripe_errors("create the cardholder"):
            return str(
                client()
                .v1.issuing.cardholders.create(
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": f"agentwallet-cardholder-{cardholder.ref}"},
                )
                .id
            )

    def issue_card(
        self, *, cardholder_id: str, controls: CardControls, card_ref: str
    ) -> IssuedCard:
        """Create the card, then read its number and CVC once (Stripe returns them only
        to a retrieve that expands them)."""
        cards = client().v1.issuing.cards
        params: dict[str, Any] = {
            "cardholder": cardholder_id,
            "currency": controls.currency.lower(),
            "type": "virtual",
            "status": "active",
            "spending_controls": spending_controls(controls),
            "metadata": {"agentwallet_card_id": card_ref},
        }
        with stripe_errors("create the card"):
            created = cards.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": f"agentwallet-card-{card_ref}"},
            )
        try:
            with stripe_errors("read the new card's number"):
                revealed = cards.retrieve(created.id, {"expand": ["number", "cvc"]})
        except IssuerError:
            self.close_card(issuer_card_id=created.id)  # nobody can ever use it
            raise
        return IssuedCard(
            issuer_card_id=str(created.id),
            number=str(revealed.number),
            cvc=str(revealed.cvc),
            exp_month=int(revealed.exp_month),
            exp_year=int(revealed.exp_year),
        )

    def update_controls(self, *, issuer_card_id: str, controls: CardControls) -> None:
        self._update(issuer_card_id, {"spending_controls": spending_controls(controls)})

    def freeze_card(self, *, issuer_card_id: str) -> None:
        self._update(issuer_card_id, {"status": STATUS["frozen"]})

    def unfreeze_card(self, *, issuer_card_id: str) -> None:
        self._update(issuer_card_id, {"status": STATUS["active"]})

    def close_card(self, *, issuer_card_id: str) -> None:
        self._update(issuer_card_id, {"status": STATUS["closed"]})

    def _update(self, issuer_card_id: str, params: dict[str, Any]) -> None:
        with stripe_errors(f"update card {issuer_card_id}"):
            client().v1.issuing.cards.update(issuer_card_id, params)  # type: ignore[arg-type]

    # --- Reading back, for the daily reconciliation -------------------------------------

    def authorizations_between(
        self, start: datetime, end: datetime
    ) -> Iterator[IssuerAuthorization]:
        with stripe_errors("list authorizations"):
            for auth in _created_between(client().v1.issuing.authorizations, start, end):
                history = auth.get("request_history") or []
                first = history[0] if history else auth.get("pending_request") or {}
                minor = first.get("merchant_amount") or auth.get("merchant_amount") or 0
                currency = str(first.get("merchant_currency") or auth.get("merchant_currency"))
                yield IssuerAuthorization(
                    id=str(auth["id"]),
                    card_id=str(auth["card"]["id"]),
                    approved=bool(auth.get("approved")),
                    requested=from_minor(int(minor), currency),
                    currency=currency.upper(),
                )

    def transactions_between(self, start: datetime, end: datetime) -> Iterator[IssuerTransaction]:
        with stripe_errors("list transactions"):
            for txn in _created_between(client().v1.issuing.transactions, start, end):
                currency = str(txn["merchant_currency"])
                yield IssuerTransaction(
                    id=str(txn["id"]),
                    card_id=str(txn["card"]),
                    authorization_id=str(txn.get("authorization") or ""),
                    kind=str(txn["type"]),
                    amount=from_minor(abs(int(txn["merchant_amount"])), currency),
                    currency=currency.upper(),
                )

    def transaction_exists(self, transaction_id: str) -> bool:
        try:
            client().v1.issuing.transactions.retrieve(transaction_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return False
            raise IssuerError(f"Stripe could not read {transaction_id}: {exc}") from exc
        except stripe.StripeError as exc:
            raise IssuerError(f"Stripe could not read {transaction_id}: {exc}") from exc
        return True

    def cards(self) -> Iterator[IssuerCardState]:
        with stripe_errors("list cards"):
            for listed in client().v1.issuing.cards.list({"limit": 100}).auto_paging_iter():
                card = listed.to_dict()
                yield IssuerCardState(
                    id=str(card["id"]),
                    status=OUR_STATUS.get(str(card["status"]), str(card["status"])),
                    controls=_comparable(card["spending_controls"]),
                )

    def controls_of(self, controls: CardControls) -> dict[str, object]:
        return _comparable(spending_controls(controls))


def _created_between(resource: Any, start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """Every object of a list endpoint created in [start, end), page after page, as
    plain dicts."""
    window = {"gte": int(start.timestamp()), "lt": int(end.timestamp())}
    for obj in resource.list({"created": window, "limit": 100}).auto_paging_iter():
        yield obj.to_dict()


def _comparable(controls: dict[str, Any]) -> dict[str, object]:
    """The two fields we set, as Stripe keeps them ("" and None: unset)."""
    return {
        "allowed_categories": sorted(controls.get("allowed_categories") or []),
        "spending_limits": sorted(
            (int(limit["amount"]), str(limit["interval"]))
            for limit in controls.get("spending_limits") or []
        ),
    }
