"""AgentWallet's API for an agent: its own key, its own wallet, its own caps."""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from agentwallet_client.errors import AgentWalletError, PaymentDeclined

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


@dataclass(frozen=True)
class SignedPayment:
    """A payment AgentWallet signed: retry the request with `header: value`."""

    payment_id: str
    header: str
    value: str
    amount: str  # USDC, as a decimal string
    network: str
    pay_to: str
    ledger_entry_id: int


class AgentWallet:
    """An agent's client. `AgentWallet()` reads AGENTWALLET_URL and AGENTWALLET_API_KEY.

    Only the x402 calls are here so far; every method raises AgentWalletError (or its
    PaymentDeclined) for an error answer.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        agent_id: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        url = url or os.environ.get("AGENTWALLET_URL", "")
        api_key = api_key or os.environ.get("AGENTWALLET_API_KEY", "")
        if not url or not api_key:
            raise ValueError("Set AGENTWALLET_URL and AGENTWALLET_API_KEY (or pass them).")
        self._http = httpx.Client(
            base_url=url.rstrip("/") + "/api/",
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            transport=transport,
            timeout=timeout,
        )
        self._agent_id = agent_id

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AgentWallet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def agent_id(self) -> str:
        """The key's own agent (an agent key sees only itself)."""
        if self._agent_id is None:
            agents = self._call("GET", "agents")["results"]
            if len(agents) != 1:
                raise ValueError("Pass agent_id: this key sees more than one agent.")
            self._agent_id = str(agents[0]["id"])
        return self._agent_id

    # --- x402 ---------------------------------------------------------------------

    def wallet(self) -> dict[str, Any]:
        """The agent's USDC wallet: address, status and networks (never the key)."""
        return self._call("GET", f"agents/{self.agent_id}/wallet")

    def pay_x402(
        self,
        payment_required: str | dict[str, Any],
        *,
        resource: str,
        trace_id: str = "",
        idempotency_key: str | None = None,
    ) -> SignedPayment:
        """Ask AgentWallet to pay a 402: v2's PAYMENT-REQUIRED header value, or v1's
        402 body. Raises PaymentDeclined when the policy says no. The same
        idempotency key never signs twice, so a retry after a lost answer is safe."""
        key = idempotency_key or str(uuid.uuid4())
        body: dict[str, Any] = {"payment_required": payment_required, "resource": resource}
        if trace_id:
            body["trace_id"] = trace_id
        path = f"agents/{self.agent_id}/x402/pay"
        try:
            answer = self._call("POST", path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:  # the answer may be lost, not the payment: ask again
            answer = self._call("POST", path, json=body, headers={"Idempotency-Key": key})
        return SignedPayment(
            payment_id=answer["payment_id"],
            header=answer["header"],
            value=answer["value"],
            amount=answer["amount"]["amount"],
            network=answer["network"],
            pay_to=answer["pay_to"],
            ledger_entry_id=answer["ledger_entry_id"],
        )

    def report_settlement(self, payment_id: str, payment_response: str) -> dict[str, Any]:
        """Tell AgentWallet what the server answered (its PAYMENT-RESPONSE value)."""
        return self._call(
            "POST",
            f"agents/{self.agent_id}/x402/payments/{payment_id}/settled",
            json={"payment_response": payment_response},
        )

    def report_refused(self, payment_id: str, reason: str) -> dict[str, Any]:
        """The server refused the payment (answered 402 again): it did not settle."""
        refused = {"success": False, "errorReason": reason[:200], "transaction": ""}
        value = base64.b64encode(json.dumps(refused).encode()).decode()
        return self.report_settlement(payment_id, value)

    # --- plumbing -------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.is_success:
            return response.json()
        try:
            body = response.json()
            error = body["error"]
            code, message = error["code"], error["message"]
        except (ValueError, KeyError, TypeError):
            body, code, message = {}, f"http_{response.status_code}", response.text[:200]
        cls = (
            PaymentDeclined
            if response.status_code == 403 and "payment_id" in (body.get("error") or {})
            else AgentWalletError
        )
        raise cls(response.status_code, code, message, body)
