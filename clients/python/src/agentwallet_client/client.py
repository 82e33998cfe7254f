"""AgentWallet's API for an agent: its own key, its own wallet, its own caps."""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from agentwallet_client.errors import AgentWalletError, PaymentDeclined
from agentwallet_client.traces import ci_trace_id
from agentwallet_client.types import (
    Approval,
    Budget,
    Card,
    IssuedCard,
    LedgerEntry,
    Money,
    TraceContext,
    TraceSpend,
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# Calls that may be sent again when the answer is lost: reads, and writes whose second
# arrival changes nothing (the trace context is set to a value; x402 pay has its key).
RETRIES = 2


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

    Every method raises AgentWalletError for an error answer, and PaymentDeclined (its
    subclass) when the agent's policy declines: with the reason, the cap that stopped it,
    the headroom left and the approval request it opened. Calls are sent again after a
    lost answer only where that cannot spend twice (reads, the trace context, x402 with
    its idempotency key).
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
        if trace := trace_id or ci_trace_id():
            body["trace_id"] = trace
        path = f"agents/{self.agent_id}/x402/pay"
        # The same key again gets the first answer: a lost answer is safe to ask again.
        answer = self._call("POST", path, json=body, headers={"Idempotency-Key": key}, retry=True)
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

    # --- Budget, cards, kill switch ----------------------------------------------------

    def budget(self) -> Budget:
        """Every cap of the agent: spent, remaining, bumps, cards, traces, x402."""
        return Budget.of(self._call("GET", f"agents/{self.agent_id}/budget", retry=True))

    def cards(self) -> list[Card]:
        answer = self._call("GET", f"agents/{self.agent_id}/cards", retry=True)
        return [Card.of(card) for card in answer["results"]]

    def card(self, card_id: str) -> Card:
        return Card.of(self._call("GET", f"agents/{self.agent_id}/cards/{card_id}", retry=True))

    def request_card(
        self,
        vendor: str,
        *,
        monthly_cap: Decimal | str | None = None,
        currency: str = "USD",
        trace_id: str | None = None,
        expires_in_seconds: int | None = None,
        single_use: bool = False,
        max_amount: Decimal | str | None = None,
    ) -> IssuedCard:
        """A new card for one vendor (ephemeral with a lifetime, or single use): its
        number and CVC are in this answer only. Never sent twice (it would issue two).
        `max_amount` (with `expires_in_seconds`): a single-use card for one charge up to
        it, issued only if it fits the caps now; else Declined, with the approval request
        it opened."""
        body: dict[str, Any] = {"vendor": vendor, "single_use": single_use}
        if monthly_cap is not None:
            body["monthly_cap"] = Money(Decimal(str(monthly_cap)), currency).json()
        if max_amount is not None:
            body["max_amount"] = Money(Decimal(str(max_amount)), currency).json()
        if trace := trace_id or ci_trace_id():
            body["trace_id"] = trace
        if expires_in_seconds is not None:
            body["expires_in_seconds"] = expires_in_seconds
        answer = self._call("POST", f"agents/{self.agent_id}/cards", json=body)
        return IssuedCard(card=Card.of(answer["card"]), number=answer["number"], cvc=answer["cvc"])

    def freeze_card(self, card_id: str, reason: str) -> Card:
        path = f"agents/{self.agent_id}/cards/{card_id}/freeze"
        return Card.of(self._call("POST", path, json={"reason": reason}))

    def freeze(self, reason: str) -> list[str]:
        """The agent's own kill switch: every active card frozen (and its USDC wallet),
        at once. Unfreezing is for staff. Returns the ids of the cards frozen."""
        answer = self._call("POST", f"agents/{self.agent_id}/freeze", json={"reason": reason})
        return [str(card["id"]) for card in answer["changed"]]

    # --- Trace context -----------------------------------------------------------------

    def set_trace(
        self, trace_id: str | None = None, *, ttl_seconds: int | None = None
    ) -> TraceContext:
        """Charges with no trace of their own count against this one until it lapses.
        None: the trace of the CI job this runs in (agentwallet_client.ci_trace_id)."""
        trace = trace_id or ci_trace_id()
        if not trace:
            raise ValueError("Name a trace id: none can be derived from this environment.")
        body: dict[str, Any] = {"trace_id": trace}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        answer = self._call("PUT", f"agents/{self.agent_id}/trace", json=body, retry=True)
        context = answer["trace"] or {}
        return TraceContext(trace_id=context.get("trace_id", trace), expires_at=_when(context))

    def clear_trace(self) -> None:
        self._call("DELETE", f"agents/{self.agent_id}/trace", retry=True)

    @contextmanager
    def trace(
        self, trace_id: str | None = None, *, ttl_seconds: int | None = None
    ) -> Iterator[TraceContext]:
        """`with wallet.trace("owner/repo#4823"):` ... and the context is cleared on exit,
        whatever happened inside."""
        context = self.set_trace(trace_id, ttl_seconds=ttl_seconds)
        try:
            yield context
        finally:
            self.clear_trace()

    def trace_spend(self, trace_id: str) -> TraceSpend:
        """What a trace has spent, across agents and vendors."""
        path = f"traces/{quote(trace_id, safe='')}"  # owner/repo#4823: / and # escaped
        return TraceSpend.of(self._call("GET", path, retry=True))

    # --- Approvals ---------------------------------------------------------------------

    def ask_approval(
        self,
        scope: str,
        amount: Decimal | str,
        reason: str,
        *,
        currency: str = "USD",
        trace_id: str | None = None,
        vendor: str | None = None,
    ) -> Approval:
        """Ask a lead ahead for a bump of one cap (`daily`, `monthly`, `vendor` with its
        slug, `trace` with its id); the answer comes in Slack or the portal: poll
        `approval(id)`."""
        body: dict[str, Any] = {
            "scope": scope,
            "amount": Money(Decimal(str(amount)), currency).json(),
            "reason": reason,
        }
        if trace_id:
            body["trace_id"] = trace_id
        if vendor:
            body["vendor"] = vendor
        return Approval.of(self._call("POST", f"agents/{self.agent_id}/approvals", json=body))

    def approval(self, approval_id: int) -> Approval:
        return Approval.of(self._call("GET", f"approvals/{approval_id}", retry=True))

    # --- The ledger --------------------------------------------------------------------

    def ledger(
        self,
        *,
        trace_id: str | None = None,
        rail: str | None = None,
        vendor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 500,
    ) -> list[LedgerEntry]:
        """The agent's ledger entries, newest first, at most `limit` (pages followed)."""
        params = {
            "trace_id": trace_id,
            "rail": rail,
            "vendor": vendor,
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "page_size": min(limit, 500),
        }
        page = self._call(
            "GET", "ledger", params={k: v for k, v in params.items() if v is not None}, retry=True
        )
        entries = [LedgerEntry.of(row) for row in page["results"]]
        while page.get("next") and len(entries) < limit:
            page = self._call("GET", page["next"], retry=True)
            entries += [LedgerEntry.of(row) for row in page["results"]]
        return entries[:limit]

    # --- plumbing -------------------------------------------------------------------

    def _call(self, method: str, path: str, *, retry: bool = False, **kwargs: Any) -> Any:
        attempts = RETRIES + 1 if retry else 1
        for attempt in range(attempts):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError:
                if attempt + 1 == attempts:
                    raise
                time.sleep(0.1 * (attempt + 1))
                continue
            if response.status_code == 503 and attempt + 1 < attempts:
                time.sleep(0.2 * (attempt + 1))  # the database did not answer in time
                continue
            return _answer(response)
        raise AssertionError("unreachable")  # pragma: no cover


def _when(context: dict[str, Any]) -> datetime | None:
    value = context.get("expires_at")
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _answer(response: httpx.Response) -> Any:
    """The JSON of a success, or the API's error raised (a decline as PaymentDeclined)."""
    if response.is_success:
        return None if response.status_code == 204 or not response.content else response.json()
    try:
        body = response.json()
        error = body["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        body, code, message = {}, f"http_{response.status_code}", response.text[:200]
    error = body.get("error") or {}
    declined = response.status_code == 403 and ("payment_id" in error or "cap" in error)
    raise (PaymentDeclined if declined else AgentWalletError)(
        response.status_code, code, message, body
    )
