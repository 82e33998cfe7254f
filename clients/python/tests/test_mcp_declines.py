"""A decline's tool result tells the model what to do next, by what stopped it."""

from __future__ import annotations

import pytest
from agentwallet_client.errors import PaymentDeclined
from agentwallet_client.mcp import declined_result


def declined(code: str, cap: dict | None, approval_id: int | None = None) -> PaymentDeclined:
    error = {"code": code, "message": "Declined.", "cap": cap, "approval_id": approval_id}
    return PaymentDeclined(403, code, "Declined.", {"error": error})


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


@pytest.mark.parametrize(
    ("code", "cap", "approval_id", "says"),
    [
        (
            "daily_cap_exceeded",
            {"scope": "daily", "limit": usd("50.00"), "remaining": usd("3.00")},
            12,
            "poll get_approval",
        ),
        (
            "daily_cap_exceeded",
            {"scope": "daily", "limit": usd("50.00"), "remaining": usd("3.00")},
            None,
            "request_approval",
        ),
        (
            "principal_unverified",
            {"scope": "unverified_principal", "limit": usd("25.00"), "remaining": usd("25.00")},
            None,
            "verified their email",
        ),
        (
            "per_authorization_cap_exceeded",
            {"scope": "per_authorization", "limit": usd("100.00"), "remaining": usd("100.00")},
            None,
            "no approval raises it",
        ),
        (
            "velocity_exceeded",
            {"scope": "velocity", "limit": None, "remaining": None},
            None,
            "wait",
        ),
        ("merchant_not_allowed", None, None, "Do not retry"),
    ],
)
def test_next_step_follows_what_stopped_it(code, cap, approval_id, says):
    result = declined_result(declined(code, cap, approval_id))

    assert says in result["next_step"]
    assert result["declined"]["reason"] == code
    assert result["declined"]["approval_id"] == approval_id
    assert "None" not in result["next_step"]


def test_the_headroom_is_named_with_its_currency():
    cap = {"scope": "daily", "limit": usd("50.00"), "remaining": usd("3.00")}
    result = declined_result(declined("daily_cap_exceeded", cap))
    assert result["declined"]["headroom"] == "3.00"
    assert "3.00 USD" in result["next_step"]
