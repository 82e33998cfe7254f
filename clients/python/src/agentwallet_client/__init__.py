"""AgentWallet's client for coding agents (no Django needed)."""

from agentwallet_client.client import AgentWallet, SignedPayment
from agentwallet_client.errors import AgentWalletError, CapStop, PaymentDeclined
from agentwallet_client.x402 import X402Transport

__all__ = [
    "AgentWallet",
    "AgentWalletError",
    "CapStop",
    "PaymentDeclined",
    "SignedPayment",
    "X402Transport",
]
