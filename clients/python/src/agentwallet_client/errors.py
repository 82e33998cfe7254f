"""What the client raises: a decline is not a bug, and says how much room is left."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class AgentWalletError(Exception):
    """AgentWallet answered with an error (DESIGN's shape: code, message, fields)."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None = None):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}


@dataclass(frozen=True)
class CapStop:
    """The cap that stopped a payment: its scope, limit and what was left under it."""

    scope: str
    limit: Decimal | None
    remaining: Decimal | None
    currency: str


class PaymentDeclined(AgentWalletError):
    """The agent's policy declined the payment; nothing was signed. Stop and ask (the
    approval request, when a cap stopped it, is `approval_id`) rather than retry."""

    @property
    def reason(self) -> str:
        return self.code

    @property
    def cap(self) -> CapStop | None:
        cap = self.body.get("error", {}).get("cap")
        if not cap:
            return None

        def amount(money: dict[str, str] | None) -> Decimal | None:
            return None if money is None else Decimal(money["amount"])

        money = cap.get("limit") or cap.get("remaining") or {}
        return CapStop(
            scope=cap["scope"],
            limit=amount(cap.get("limit")),
            remaining=amount(cap.get("remaining")),
            currency=money.get("currency", ""),
        )

    @property
    def headroom(self) -> Decimal | None:
        """What the cap that stopped it still allows (None: no cap named)."""
        cap = self.cap
        return None if cap is None else cap.remaining

    @property
    def approval_id(self) -> int | None:
        return self.body.get("error", {}).get("approval_id")

    @property
    def payment_id(self) -> str | None:
        return self.body.get("error", {}).get("payment_id")
