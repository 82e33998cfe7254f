"""AgentWallet's MCP server over stdio: the agent's tools, through its own client.

    agentwallet-mcp        # AGENTWALLET_URL and AGENTWALLET_API_KEY from the environment

A coding agent (Claude Code, Cursor, ...) starts it as a subprocess. Every tool acts as
the key's agent only, as the REST API does. A decline is a result that says which cap
stopped it, the headroom, and what to do next, never an error that ends the turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
from mcp.server import MCPServer

from agentwallet_client.client import AgentWallet
from agentwallet_client.errors import AgentWalletError, PaymentDeclined
from agentwallet_client.x402 import X402Transport

INSTRUCTIONS = (
    "AgentWallet holds this agent's spending: virtual cards locked to one vendor each, a "
    "USDC wallet for HTTP 402 (x402) APIs, and caps (rolling 24 hours, month, per "
    "vendor, per trace). Set a trace for the task first (set_trace, e.g. owner/repo#123) "
    "so spend is attributed to it. When a tool answers `declined`, do not retry: read "
    "`next_step` (wait for the window, or request_approval and poll get_approval)."
)


def _plain(value: Any) -> Any:
    """Tool results as JSON: money as decimal strings, times as ISO 8601."""
    if is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        return f"{value}"
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# Limits on one charge, not on spend over a window (policies.rules' one-charge scopes).
_ONE_CHARGE_SCOPES = ("per_authorization", "x402_per_call")


def declined_result(declined: PaymentDeclined) -> dict[str, Any]:
    """What an LLM needs from a decline: why, which cap, how much is left, what next."""
    cap = declined.cap
    headroom = None if declined.headroom is None else f"{declined.headroom} {cap.currency}"
    if declined.approval_id is not None:
        step = (
            f"An approval request ({declined.approval_id}) was opened for a lead: poll "
            "get_approval and retry once it is approved."
        )
    elif cap is not None and cap.scope == "unverified_principal":
        step = (
            f"The agent's principal has not verified their email yet: until they open the "
            f"link mailed to them, keep each charge within {headroom}."
        )
    elif cap is not None and cap.scope in _ONE_CHARGE_SCOPES:
        step = (
            f"This limit is on one charge and no approval raises it: keep the amount "
            f"within {headroom}, or ask a lead to change the policy."
        )
    elif cap is not None and cap.scope == "velocity":
        step = "Too many charges in the rolling hour: wait before the next one."
    elif cap is not None:
        step = f"Lower the amount to the headroom ({headroom}), or request_approval for this cap."
    else:
        step = "Do not retry: this is not a cap a lead can raise (see reason)."
    return {
        "declined": {
            "reason": declined.reason,
            "message": declined.message,
            "cap": _plain(cap),
            "headroom": None if declined.headroom is None else f"{declined.headroom}",
            "approval_id": declined.approval_id,
        },
        "next_step": step,
    }


def _error_result(error: AgentWalletError) -> dict[str, Any]:
    return {"error": {"status": error.status, "code": error.code, "message": error.message}}


def build_server(
    wallet_for: Callable[[], AgentWallet],
    *,
    check_url: Callable[[str], None] | None = None,
) -> MCPServer:
    """The MCP server whose tools act through `wallet_for()`: one agent's client (the
    stdio server's, or the one of the HTTP request being answered). `check_url` may
    refuse a URL pay_x402 would fetch (the in-app server refuses private networks)."""
    server = MCPServer(name="agentwallet", instructions=INSTRUCTIONS)

    def answer(call: Callable[[], Any]) -> dict[str, Any]:
        try:
            return {"result": _plain(call())}
        except PaymentDeclined as declined:
            return declined_result(declined)
        except AgentWalletError as error:
            return _error_result(error)

    @server.tool(
        description="This agent's caps: spent and remaining for the rolling 24 "
        "hours, the month, each card and vendor, each open trace, and x402."
    )
    def get_budget() -> dict[str, Any]:
        return answer(lambda: wallet_for().budget())

    @server.tool(description="This agent's cards: vendor, last four digits, status, cap.")
    def list_cards() -> dict[str, Any]:
        return answer(lambda: wallet_for().cards())

    @server.tool(
        description="Issue a card for one vendor (slug, e.g. openai). For one purchase, "
        "give max_amount (dollars) and expires_in_seconds (minutes to hours): a single-use "
        "card up to that amount, if it fits the caps (else a decline and an approval "
        "request). Otherwise an optional monthly cap, trace and lifetime. The number and "
        "CVC are shown in this answer only."
    )
    def request_card(
        vendor: str,
        monthly_cap: str | None = None,
        trace_id: str | None = None,
        expires_in_seconds: int | None = None,
        single_use: bool = False,
        max_amount: str | None = None,
    ) -> dict[str, Any]:
        def issue() -> dict[str, Any]:
            issued = wallet_for().request_card(
                vendor,
                monthly_cap=monthly_cap,
                trace_id=trace_id,
                expires_in_seconds=expires_in_seconds,
                single_use=single_use,
                max_amount=max_amount,
            )
            return {"card": _plain(issued.card), "number": issued.number, "cvc": issued.cvc}

        return answer(issue)

    @server.tool(
        description="Attribute this agent's spend to a trace (a PR, deploy or task, "
        "e.g. owner/repo#123) until cleared or ttl_seconds pass."
    )
    def set_trace(trace_id: str, ttl_seconds: int | None = None) -> dict[str, Any]:
        return answer(lambda: wallet_for().set_trace(trace_id, ttl_seconds=ttl_seconds))

    @server.tool(description="Stop attributing this agent's spend to its current trace.")
    def clear_trace() -> dict[str, Any]:
        return answer(lambda: wallet_for().clear_trace() or {"cleared": True})

    @server.tool(description="What a trace has spent, across agents and vendors.")
    def get_trace_spend(trace_id: str) -> dict[str, Any]:
        return answer(lambda: wallet_for().trace_spend(trace_id))

    @server.tool(
        description="Ask a lead ahead for more room on one cap: scope daily, monthly, "
        "vendor (with vendor slug) or trace (with trace_id); amount in dollars; say why."
    )
    def request_approval(
        scope: str,
        amount: str,
        reason: str,
        trace_id: str | None = None,
        vendor: str | None = None,
    ) -> dict[str, Any]:
        return answer(
            lambda: wallet_for().ask_approval(
                scope, amount, reason, trace_id=trace_id, vendor=vendor
            )
        )

    @server.tool(description="An approval request's status: pending, approved, denied.")
    def get_approval(approval_id: int) -> dict[str, Any]:
        return answer(lambda: wallet_for().approval(approval_id))

    @server.tool(
        description="Fetch a URL (GET); when it answers 402 Payment Required (x402), pay "
        "it from this agent's USDC wallet within the policy's caps and fetch it again. "
        "Returns the status and the body (text, at most 20,000 characters)."
    )
    def pay_x402(url: str, trace_id: str | None = None) -> dict[str, Any]:
        def fetch() -> dict[str, Any]:
            if check_url is not None:
                check_url(url)
            transport = X402Transport(wallet_for(), trace_id=trace_id or "")
            with httpx.Client(transport=transport, timeout=30) as http:
                response = http.get(url, headers={"Accept": "application/json"})
            return {"status": response.status_code, "body": response.text[:20_000]}

        return answer(fetch)

    @server.tool(
        description="The agent's own kill switch: freeze every card and the USDC wallet "
        "now (a person unfreezes). Use it when something is spending that should not."
    )
    def freeze_my_cards(reason: str) -> dict[str, Any]:
        return answer(lambda: {"frozen_card_ids": wallet_for().freeze(reason)})

    return server


def main() -> None:
    """`agentwallet-mcp`: the stdio server for the agent of AGENTWALLET_API_KEY."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # stdout is the protocol's
    wallet = AgentWallet()
    build_server(lambda: wallet).run("stdio")
