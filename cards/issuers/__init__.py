"""Issuer backends: who creates the card at the card network.

Callers use `get_issuer()` and the `IssuerBackend` protocol only, so each processor is
one module (`sandbox`, `stripe`) and none of them is named outside this package.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string


@dataclass(frozen=True, repr=False)
class IssuedCard:
    """What the issuer returns once. `number` and `cvc` must never be logged."""

    issuer_card_id: str
    number: str
    cvc: str
    exp_month: int
    exp_year: int

    @property
    def last4(self) -> str:
        return self.number[-4:]

    def __repr__(self) -> str:  # keeps the PAN and CVC out of tracebacks and logs
        return f"IssuedCard(issuer_card_id={self.issuer_card_id!r}, last4={self.last4!r})"


@dataclass(frozen=True)
class Cardholder:
    """Whom the issuer's cards are for: one principal (a person or a team)."""

    ref: str  # our principal's id
    name: str
    email: str


@dataclass(frozen=True)
class CardControls:
    """What the issuer enforces on its own side, as defence in depth: it can only narrow
    what our rules allow, never widen it. `monthly_cap_cents` is in `currency`."""

    currency: str
    allowed_mccs: tuple[str, ...]
    monthly_cap_cents: int | None


class IssuerError(Exception):
    """The issuer refused or could not be reached; nothing was issued or changed there."""


class IssuerBackend(Protocol):
    name: str

    def cardholder_create(self, *, cardholder: Cardholder) -> str:
        """The issuer's id of a new cardholder."""
        ...

    def issue_card(
        self, *, cardholder_id: str, controls: CardControls, card_ref: str
    ) -> IssuedCard: ...

    def update_controls(self, *, issuer_card_id: str, controls: CardControls) -> None: ...

    def freeze_card(self, *, issuer_card_id: str) -> None: ...

    def unfreeze_card(self, *, issuer_card_id: str) -> None: ...

    def close_card(self, *, issuer_card_id: str) -> None: ...


ISSUERS = {
    "sandbox": "cards.issuers.sandbox.SandboxIssuer",
    "stripe": "cards.issuers.stripe.StripeIssuer",
}


def get_issuer(name: str | None = None) -> IssuerBackend:
    """The backend of `name`, or of AGENTWALLET_CARD_ISSUER (read on each call)."""
    return _backend(name or settings.AGENTWALLET_CARD_ISSUER)


@cache
def _backend(name: str) -> IssuerBackend:
    backend: IssuerBackend = import_string(ISSUERS[name])()
    return backend


@dataclass(frozen=True)
class IssuerAuthorization:
    """An authorization as the issuer keeps it (amounts exact, in the merchant's currency)."""

    id: str
    card_id: str  # the issuer's card id
    approved: bool
    requested: Decimal  # what the merchant asked for first
    currency: str


@dataclass(frozen=True)
class IssuerTransaction:
    """A capture or refund as the issuer keeps it (the amount positive)."""

    id: str
    card_id: str
    authorization_id: str
    kind: str  # "capture" or "refund"
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class IssuerCardState:
    id: str
    status: str  # in our vocabulary: active, frozen, closed
    controls: dict[str, object]  # the issuer's own representation, for comparing


class ReconcilableIssuer(IssuerBackend, Protocol):
    """An issuer whose records can be read back, for the daily reconciliation."""

    def authorizations_between(
        self, start: datetime, end: datetime
    ) -> Iterator[IssuerAuthorization]: ...

    def transactions_between(
        self, start: datetime, end: datetime
    ) -> Iterator[IssuerTransaction]: ...

    def transaction_exists(self, transaction_id: str) -> bool: ...

    def cards(self) -> Iterator[IssuerCardState]: ...

    def controls_of(self, controls: CardControls) -> dict[str, object]:
        """`controls` as the issuer would keep them (to compare with IssuerCardState)."""
        ...
