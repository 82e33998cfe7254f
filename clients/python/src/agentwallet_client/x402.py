"""Paying x402 APIs inline: wrap the agent's HTTP client, and a 402 is paid from its
AgentWallet wallet (under its caps), the request retried once with the signed header,
and the server's settlement reported back.

    http = httpx.Client(transport=X402Transport(AgentWallet(), trace_id="PR-4823"))
    http.get("https://api.example.com/premium")      # 402 -> paid -> 200

One request is paid for at most once: one idempotency key per request, one retry.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from typing import Any

import httpx

from agentwallet_client.client import AgentWallet, SignedPayment

logger = logging.getLogger("agentwallet_client")

PAYMENT_REQUIRED = "PAYMENT-REQUIRED"  # v2: the requirements, base64 JSON
SETTLEMENT_HEADERS = ("PAYMENT-RESPONSE", "X-PAYMENT-RESPONSE")  # v2, v1


def payment_required_of(headers: Any, body: bytes) -> str | dict[str, Any] | None:
    """What a 402 asks: v2's PAYMENT-REQUIRED header, else v1's JSON body; None when it
    is not an x402 answer at all."""
    header = headers.get(PAYMENT_REQUIRED)
    if header:
        return str(header)
    try:
        document = json.loads(body or b"null")
    except ValueError:
        return None
    if isinstance(document, dict) and document.get("x402Version") == 1:
        return document
    return None


def settlement_of(headers: Any) -> str | None:
    for name in SETTLEMENT_HEADERS:
        if headers.get(name):
            return str(headers[name])
    return None


def _refusal_reason(headers: Any, body: bytes) -> str:
    """Why a server refused the payment we sent: the error of its fresh 402."""
    required = payment_required_of(headers, body)
    if isinstance(required, str):
        try:
            return str(json.loads(base64.b64decode(required)).get("error") or "refused")
        except ValueError:
            return "refused"
    if isinstance(required, dict):
        return str(required.get("error") or "refused")
    return "refused"


class _Payer:
    """What both adapters share: pay the 402, then report what the server said."""

    def __init__(self, wallet: AgentWallet, trace_id: str = "") -> None:
        self.wallet = wallet
        self.trace_id = trace_id

    def pay(self, required: str | dict[str, Any], url: str) -> SignedPayment:
        return self.wallet.pay_x402(
            required, resource=url, trace_id=self.trace_id, idempotency_key=str(uuid.uuid4())
        )

    def report(self, payment: SignedPayment, status: int, headers: Any, body: bytes) -> None:
        """Never fails the agent's request: the wallet releases what is never settled."""
        try:
            settlement = settlement_of(headers)
            if settlement is not None:
                self.wallet.report_settlement(payment.payment_id, settlement)
            elif status == 402:
                self.wallet.report_refused(payment.payment_id, _refusal_reason(headers, body))
        except Exception:  # a report lost is released later: never fatal
            logger.warning("could not report x402 payment %s", payment.payment_id, exc_info=True)


class X402Transport(httpx.BaseTransport):
    """An httpx transport that pays 402s through AgentWallet (wraps another transport)."""

    def __init__(
        self,
        wallet: AgentWallet,
        transport: httpx.BaseTransport | None = None,
        *,
        trace_id: str = "",
    ) -> None:
        self._inner = transport or httpx.HTTPTransport()
        self._payer = _Payer(wallet, trace_id)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body is sent twice when the first answer is a 402
        response = self._inner.handle_request(request)
        if response.status_code != 402:
            return response
        body = response.read()
        required = payment_required_of(response.headers, body)
        if required is None:
            return response
        response.close()
        payment = self._payer.pay(required, str(request.url))
        retry = httpx.Request(
            request.method,
            request.url,
            headers=[*request.headers.raw, (payment.header.encode(), payment.value.encode())],
            content=request.content,
            extensions=request.extensions,
        )
        paid = self._inner.handle_request(retry)
        paid_body = paid.read()
        self._payer.report(payment, paid.status_code, paid.headers, paid_body)
        return httpx.Response(
            paid.status_code,
            headers=paid.headers,
            content=paid_body,
            request=request,
            extensions=paid.extensions,
        )

    def close(self) -> None:
        self._inner.close()


try:  # the requests adapter, when requests is installed (the `requests` extra)
    import requests
    from requests.adapters import HTTPAdapter
except ImportError:  # pragma: no cover - requests is optional
    requests = None  # type: ignore[assignment]
else:

    class X402Adapter(HTTPAdapter):
        """A requests adapter that pays 402s through AgentWallet:
        `session.mount("https://", X402Adapter(AgentWallet()))`."""

        def __init__(self, wallet: AgentWallet, *, trace_id: str = "", **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._payer = _Payer(wallet, trace_id)

        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            response = super().send(request, **kwargs)
            if response.status_code != 402:
                return response
            required = payment_required_of(response.headers, response.content)
            if required is None:
                return response
            payment = self._payer.pay(required, request.url)
            retry = request.copy()
            retry.headers[payment.header] = payment.value
            paid = super().send(retry, **kwargs)
            self._payer.report(payment, paid.status_code, paid.headers, paid.content)
            return paid
