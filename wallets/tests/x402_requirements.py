"""402s as servers send them, for the wallet's tests (no server needed)."""

from __future__ import annotations

import base64
import json
from typing import Any

SEPOLIA = "eip155:84532"
USDC_SEPOLIA = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
USDC_BASE = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
PAY_TO = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
RESOURCE = "https://api.example.com/premium"


def requirement(atomic: str = "10000", **changes: Any) -> dict[str, Any]:
    """One v2 requirement: exact, Base Sepolia USDC, 60 s."""
    return {
        "scheme": "exact",
        "network": SEPOLIA,
        "amount": atomic,
        "asset": USDC_SEPOLIA,
        "payTo": PAY_TO,
        "maxTimeoutSeconds": 60,
        "extra": {"name": "USDC", "version": "2"},
    } | changes


def v2_header(*accepts: dict[str, Any], resource: str = RESOURCE) -> str:
    """The PAYMENT-REQUIRED header value of a v2 402."""
    document = {
        "x402Version": 2,
        "error": "PAYMENT-SIGNATURE header is required",
        "resource": {
            "url": resource,
            "description": "Premium data",
            "mimeType": "application/json",
        },
        "accepts": list(accepts or [requirement()]),
        "extensions": {},
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def v1_body(atomic: str = "10000", **changes: Any) -> dict[str, Any]:
    """A v1 402's JSON body."""
    return {
        "x402Version": 1,
        "error": "X-PAYMENT header is required",
        "accepts": [
            {
                "scheme": "exact",
                "network": "base-sepolia",
                "maxAmountRequired": atomic,
                "resource": RESOURCE,
                "description": "Premium data",
                "mimeType": "application/json",
                "payTo": PAY_TO,
                "maxTimeoutSeconds": 60,
                "asset": USDC_SEPOLIA,
                "extra": {"name": "USDC", "version": "2"},
            }
            | changes
        ],
    }


def decode(value: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(value))


def settlement(success: bool = True, transaction: str = "0x" + "ab" * 32, **extra: Any) -> str:
    """A PAYMENT-RESPONSE header value."""
    document = {
        "success": success,
        "transaction": transaction if success else "",
        "network": SEPOLIA,
    }
    return base64.b64encode(json.dumps(document | extra).encode()).decode()
