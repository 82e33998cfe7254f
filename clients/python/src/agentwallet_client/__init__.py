"""AgentWallet's client for coding agents (no Django needed)."""

from agentwallet_client.client import AgentWallet, SignedPayment
from agentwallet_client.errors import AgentWalletError, CapStop, PaymentDeclined
from agentwallet_client.traces import ci_trace_id
from agentwallet_client.types import (
    Approval,
    Budget,
    CapFigure,
    Card,
    IssuedCard,
    LedgerEntry,
    Money,
    TraceContext,
    TraceSpend,
)
from agentwallet_client.x402 import X402Transport

# One exception type for every decline (cards' and x402's alike).
Declined = PaymentDeclined

__all__ = [
    "AgentWallet",
    "AgentWalletError",
    "Approval",
    "Budget",
    "CapFigure",
    "CapStop",
    "Card",
    "Declined",
    "IssuedCard",
    "LedgerEntry",
    "Money",
    "PaymentDeclined",
    "SignedPayment",
    "TraceContext",
    "TraceSpend",
    "X402Transport",
    "ci_trace_id",
]
