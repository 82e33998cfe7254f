"""Issuer backends: who creates the card at the card network.

Callers use `get_issuer()` and the `IssuerBackend` protocol only, so a real
processor (Stripe Issuing) can be added as another module without touching them.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class IssuerBackend(Protocol):
    name: str

    def issue_card(self, *, cardholder_ref: str, spending_currency: str) -> IssuedCard: ...

    def freeze_card(self, *, issuer_card_id: str) -> None: ...

    def unfreeze_card(self, *, issuer_card_id: str) -> None: ...

    def close_card(self, *, issuer_card_id: str) -> None: ...


ISSUERS = {"sandbox": "cards.issuers.sandbox.SandboxIssuer"}


@cache
def get_issuer(name: str | None = None) -> IssuerBackend:
    backend_path = ISSUERS[name or settings.AGENTWALLET_CARD_ISSUER]
    backend: IssuerBackend = import_string(backend_path)()
    return backend
