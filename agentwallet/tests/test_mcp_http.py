"""MCP over streamable HTTP at /mcp, served by the app: the mcp package's own client
against the live server, with an agent's bearer key."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import httpx2
import pytest
from agentwallet_client import AgentWalletError
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agentwallet.mcp import refuse_private_url
from wallets.models import UsdcWallet


def _result(call: Any) -> dict[str, Any]:
    if call.structured_content is not None:
        return call.structured_content
    return json.loads(call.content[0].text)


async def _session(url: str, key: str, calls: list[tuple[str, dict[str, Any]]]):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        tools = await client.list_tools()
        return tools, [_result(await client.call_tool(n, a)) for n, a in calls]


def test_the_tools_over_http_act_as_the_keys_agent(
    transactional_db, django_db_serialized_rollback, live_server, alice, bob, x402_network, settings
):
    x402_network.mint(UsdcWallet.objects.get(agent=alice.agent).address, 10_000_000)
    tools, (budget, cards, paid, declined, asked) = asyncio.run(
        _session(
            live_server.url,
            alice.raw_key,
            [
                ("get_budget", {}),
                ("list_cards", {}),
                ("pay_x402", {"url": f"{x402_network.server_url}/cheap", "trace_id": "a/b#1"}),
                ("pay_x402", {"url": f"{x402_network.server_url}/pricey"}),
                ("request_approval", {"scope": "daily", "amount": "50", "reason": "evals"}),
            ],
        )
    )

    assert len(tools.tools) == 10
    assert "result" in budget, budget
    assert budget["result"]["agent_id"] == str(alice.agent.pk)
    assert {row["id"] for row in cards["result"]} == {str(c.card.pk) for c in alice.cards}
    assert paid["result"]["status"] == 200
    assert declined["declined"]["reason"] == "x402_per_call_cap_exceeded"
    assert declined["next_step"]
    assert asked["result"]["status"] == "pending"

    _, (bobs,) = asyncio.run(_session(live_server.url, bob.raw_key, [("get_budget", {})]))
    assert bobs["result"]["agent_id"] == str(bob.agent.pk)


def test_mcp_needs_an_agents_key(
    transactional_db, django_db_serialized_rollback, live_server, staff_client
):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    anonymous = httpx.post(f"{live_server.url}/mcp", json=body)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    wrong = httpx.post(
        f"{live_server.url}/mcp", json=body, headers={"Authorization": "Bearer nope.nope"}
    )
    assert wrong.status_code == 401
    staff = httpx.post(
        f"{live_server.url}/mcp",
        json=body,
        headers={"Authorization": f"Bearer {staff_client.raw_key}"},
    )
    assert (staff.status_code, staff.json()["error"]["code"]) == (403, "agent_key_required")


def test_a_malformed_message_is_a_4xx(
    transactional_db, django_db_serialized_rollback, live_server, alice
):
    answer = httpx.post(
        f"{live_server.url}/mcp",
        content=b"{not json",
        headers={
            "Authorization": f"Bearer {alice.raw_key}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
    )
    assert 400 <= answer.status_code < 500


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8000/admin/", "http://10.0.0.7/", "http://[::1]/", "file:///etc/passwd"],
)
def test_the_in_app_server_never_fetches_a_private_network(settings, url):
    settings.AGENTWALLET_MCP_FETCH_PRIVATE = False
    with pytest.raises(AgentWalletError) as refused:
        refuse_private_url(url)
    assert refused.value.code == "url_not_allowed"
