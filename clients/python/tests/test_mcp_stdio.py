"""The MCP server over stdio, as a coding agent runs it: `agentwallet-mcp` started as a
real subprocess by the mcp package's own client, talking to the live app."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters

from wallets.models import UsdcWallet

TOOLS = {
    "get_budget",
    "list_cards",
    "request_card",
    "set_trace",
    "clear_trace",
    "get_trace_spend",
    "request_approval",
    "get_approval",
    "pay_x402",
    "freeze_my_cards",
}


def _server(url: str, key: str) -> StdioServerParameters:
    script = shutil.which("agentwallet-mcp") or str(
        Path(sys.executable).with_name("agentwallet-mcp")
    )
    env = {"AGENTWALLET_URL": url, "AGENTWALLET_API_KEY": key, "PATH": os.environ["PATH"]}
    return StdioServerParameters(command=script, env=env)


def _result(call: Any) -> dict[str, Any]:
    """A tool's answer: its structured content, else its text as JSON."""
    if call.structured_content is not None:
        return call.structured_content
    return json.loads(call.content[0].text)


async def _session(url: str, key: str, calls: list[tuple[str, dict[str, Any]]]):
    async with Client(_server(url, key), read_timeout_seconds=60) as client:
        tools = await client.list_tools()
        answers = [_result(await client.call_tool(name, arguments)) for name, arguments in calls]
        return tools, answers


def test_every_tool_over_stdio(
    transactional_db, django_db_serialized_rollback, live_server, alice, bob, x402_network
):
    x402_network.mint(UsdcWallet.objects.get(agent=alice.agent).address, 10_000_000)
    calls = [
        ("get_budget", {}),
        ("set_trace", {"trace_id": "acme/api#77", "ttl_seconds": 600}),
        ("request_card", {"vendor": "openai", "monthly_cap": "25.00", "expires_in_seconds": 600}),
        ("list_cards", {}),
        ("pay_x402", {"url": f"{x402_network.server_url}/cheap"}),
        ("pay_x402", {"url": f"{x402_network.server_url}/pricey"}),
        ("get_trace_spend", {"trace_id": "acme/api#77"}),
        ("request_approval", {"scope": "daily", "amount": "100.00", "reason": "eval run"}),
        ("clear_trace", {}),
        ("request_card", {"vendor": "no-such-vendor"}),
        ("freeze_my_cards", {"reason": "the agent saw a prompt injection"}),
    ]
    tools, answers = asyncio.run(_session(live_server.url, alice.raw_key, calls))

    listed = {tool.name: tool for tool in tools.tools}
    assert set(listed) == TOOLS
    assert all(tool.description for tool in listed.values())
    assert set(listed["request_card"].input_schema["properties"]) >= {"vendor", "single_use"}
    assert listed["request_card"].input_schema["required"] == ["vendor"]

    budget, trace, card, cards, paid, declined, spend, approval, cleared, bad, frozen = answers
    assert budget["result"]["rolling_24h"]["cap"] == {"amount": "500.00", "currency": "USD"}
    assert trace["result"]["trace_id"] == "acme/api#77"
    assert card["result"]["card"]["vendor"] == "openai"
    assert card["result"]["number"].endswith(card["result"]["card"]["last4"])
    mine = {row["id"] for row in cards["result"]}
    assert card["result"]["card"]["id"] in mine
    assert not mine & {str(c.card.pk) for c in bob.cards}  # only the key's own agent
    assert paid["result"] == {"status": 200, "body": '{"data":"cheap"}'}
    assert declined["declined"]["reason"] == "x402_per_call_cap_exceeded"
    assert declined["declined"]["headroom"] == "5.00"
    assert "within 5.00 USD" in declined["next_step"]  # a per-call limit: no approval
    assert spend["result"]["spent"] == {"amount": "0.01", "currency": "USD"}
    assert approval["result"]["status"] == "pending"
    assert cleared == {"result": {"cleared": True}}
    assert bad["error"]["status"] == 400
    assert len(frozen["result"]["frozen_card_ids"]) == len(mine)
