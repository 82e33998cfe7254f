"""What the API answers, typed: money as Decimal, times as aware datetimes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: str

    @classmethod
    def of(cls, data: dict[str, str] | None) -> Money | None:
        return None if data is None else cls(Decimal(data["amount"]), data["currency"])

    def json(self) -> dict[str, str]:
        return {"amount": f"{self.amount}", "currency": self.currency}

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def _money(data: dict[str, str]) -> Money:
    money = Money.of(data)
    if money is None:
        raise ValueError("money expected")
    return money


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class CapFigure:
    """One cap: its limit (None: none set), an approved bump, what is spent, what is left."""

    cap: Money | None
    bump: Money | None
    spent: Money
    remaining: Money | None

    @classmethod
    def of(cls, data: dict[str, Any]) -> CapFigure:
        return cls(
            cap=Money.of(data["cap"]),
            bump=Money.of(data["bump"]),
            spent=_money(data["spent"]),
            remaining=Money.of(data["remaining"]),
        )


@dataclass(frozen=True)
class CardBudget:
    card_id: str
    vendor: str
    last4: str
    status: str
    card_cap: CapFigure | None
    vendor_cap: CapFigure | None


@dataclass(frozen=True)
class TraceBudget:
    trace_id: str
    figure: CapFigure


@dataclass(frozen=True)
class X402Budget:
    allowed: bool
    per_call_cap: Money | None
    wallet_address: str | None
    unsettled: Money


@dataclass(frozen=True)
class Budget:
    """GET /api/agents/{id}/budget: every cap of the agent with its headroom."""

    agent_id: str
    currency: str
    as_of: datetime
    rolling_24h: CapFigure
    month: CapFigure
    per_authorization_cap: Money | None
    cards: list[CardBudget]
    traces: list[TraceBudget]
    x402: X402Budget

    @classmethod
    def of(cls, data: dict[str, Any]) -> Budget:
        def optional(figure: dict[str, Any] | None) -> CapFigure | None:
            return None if figure is None else CapFigure.of(figure)

        x402 = data["x402"]
        return cls(
            agent_id=data["agent_id"],
            currency=data["currency"],
            as_of=_when(data["as_of"]),  # type: ignore[arg-type]
            rolling_24h=CapFigure.of(data["rolling_24h"]),
            month=CapFigure.of(data["month"]),
            per_authorization_cap=Money.of(data["per_authorization_cap"]),
            cards=[
                CardBudget(
                    card_id=card["card_id"],
                    vendor=card["vendor"],
                    last4=card["last4"],
                    status=card["status"],
                    card_cap=optional(card["card_cap"]),
                    vendor_cap=optional(card["vendor_cap"]),
                )
                for card in data["cards"]
            ],
            traces=[
                TraceBudget(trace["trace_id"], CapFigure.of(trace)) for trace in data["traces"]
            ],
            x402=X402Budget(
                allowed=x402["allowed"],
                per_call_cap=Money.of(x402["per_call_cap"]),
                wallet_address=x402["wallet_address"],
                unsettled=_money(x402["unsettled"]),
            ),
        )


@dataclass(frozen=True)
class Card:
    """A card, as the API shows it after issuance: the last four digits only."""

    id: str
    vendor: str
    vendor_name: str
    status: str
    last4: str
    exp_month: int
    exp_year: int
    monthly_cap: Money | None
    is_ephemeral: bool
    single_use: bool
    trace_id: str
    expires_at: datetime | None

    @classmethod
    def of(cls, data: dict[str, Any]) -> Card:
        return cls(
            id=data["id"],
            vendor=data["vendor"],
            vendor_name=data["vendor_name"],
            status=data["status"],
            last4=data["last4"],
            exp_month=data["exp_month"],
            exp_year=data["exp_year"],
            monthly_cap=Money.of(data["monthly_cap"]),
            is_ephemeral=data["is_ephemeral"],
            single_use=data["single_use"],
            trace_id=data["trace_id"],
            expires_at=_when(data["expires_at"]),
        )


@dataclass(frozen=True)
class IssuedCard:
    """A new card with its number and CVC: in this answer only, never again."""

    card: Card
    number: str
    cvc: str

    def __repr__(self) -> str:  # the number and CVC stay out of logs and tracebacks
        return f"IssuedCard(card={self.card!r}, number='…{self.card.last4}', cvc='***')"


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    expires_at: datetime | None


@dataclass(frozen=True)
class Approval:
    id: int
    scope: str
    scope_key: str
    status: str  # pending, approved, denied, expired
    requested_amount: Money
    approved_amount: Money | None
    cap_limit: Money
    spent: Money
    reason: str
    note: str
    expires_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, data: dict[str, Any]) -> Approval:
        return cls(
            id=data["id"],
            scope=data["scope"],
            scope_key=data["scope_key"],
            status=data["status"],
            requested_amount=_money(data["requested_amount"]),
            approved_amount=Money.of(data["approved_amount"]),
            cap_limit=_money(data["cap_limit"]),
            spent=_money(data["spent"]),
            reason=data["reason"],
            note=data["note"],
            expires_at=_when(data["expires_at"]),
            created_at=_when(data["created_at"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    kind: str  # hold, capture, release, refund, x402_payment
    rail: str  # card, usdc
    trace_id: str
    vendor: str | None
    card_id: str | None
    amount: Money
    cap_amount: Money
    memo: str
    created_at: datetime

    @classmethod
    def of(cls, data: dict[str, Any]) -> LedgerEntry:
        return cls(
            id=data["id"],
            kind=data["kind"],
            rail=data["rail"],
            trace_id=data["trace_id"],
            vendor=data["vendor"],
            card_id=data["card_id"],
            amount=_money(data["amount"]),
            cap_amount=_money(data["cap_amount"]),
            memo=data["memo"],
            created_at=_when(data["created_at"]),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class TraceSpend:
    """What a trace (a PR, a deploy, a task) has spent, across agents and vendors."""

    trace_id: str
    spent: Money
    entries: int
    by_vendor: dict[str, Money]
    by_agent: dict[str, Money]

    @classmethod
    def of(cls, data: dict[str, Any]) -> TraceSpend:
        return cls(
            trace_id=data["trace_id"],
            spent=_money(data["spent"]),
            entries=data["entries"],
            by_vendor={row["vendor"]: _money(row["spent"]) for row in data["by_vendor"]},
            by_agent={row["agent_name"]: _money(row["spent"]) for row in data["by_agent"]},
        )
