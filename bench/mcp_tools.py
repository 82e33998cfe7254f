"""MCP tool calls, round trip: `get_budget` and `request_card` through the mcp package's
own client, over streamable HTTP (/mcp in the app under gunicorn) and over stdio
(`agentwallet-mcp` as a subprocess, talking to the same gunicorn).

    .venv/bin/python bench/mcp_tools.py [--calls 1000] [--quick]

One client, calls back to back in one session (an agent's turn is sequential).
Target: get_budget p99 under 50 ms.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from decimal import Decimal
from pathlib import Path

import harness

TARGET_P99_MS = 50.0


async def _measure(client, calls: int) -> dict[str, dict[str, float]]:
    figures = {}
    for tool, arguments in (
        ("get_budget", {}),
        ("request_card", {"vendor": "openai", "expires_in_seconds": 600}),
    ):
        for _ in range(10):  # warm up
            await client.call_tool(tool, arguments)
        took = []
        for _ in range(calls):
            started = time.perf_counter()
            result = await client.call_tool(tool, arguments)
            took.append(time.perf_counter() - started)
            if result.is_error or "result" not in (result.structured_content or {}):
                raise SystemExit(f"{tool} failed: {result}")
        figures[tool] = harness.summary(took)
    return figures


async def _over_http(url: str, key: str, calls: int):
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        return await _measure(client, calls)


async def _over_stdio(url: str, key: str, calls: int):
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    script = shutil.which("agentwallet-mcp") or str(
        Path(sys.executable).with_name("agentwallet-mcp")
    )
    env = {"AGENTWALLET_URL": url, "AGENTWALLET_API_KEY": key, "PATH": os.environ["PATH"]}
    async with Client(StdioServerParameters(command=script, env=env)) as client:
        return await _measure(client, calls)


def main() -> int:
    parser = harness.common_arguments(__doc__.splitlines()[0], "mcp.json")
    # p99 of 300 calls would be the third-worst; of 1000 it is the tenth.
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers")
    args = parser.parse_args()
    calls = 40 if args.quick else args.calls
    code = args.code.resolve()
    harness.django_setup(code, args.postgres_url)
    harness.recreate_database(args.postgres_url)
    harness.principals_verified(["lead@example.com"])

    from policies.models import Policy
    from wallets.actors import Actor
    from wallets.services import agent_provision

    policy = Policy.objects.get(slug="starter")
    policy.monthly_cap = Decimal("10000000")
    policy.save()
    # One agent per transport: request_card adds a card a call, and the budget lists them.
    agents = {
        transport: agent_provision(
            name=f"mcp-bench-{transport}",
            principal_email="lead@example.com",
            policy=policy,
            actor=Actor.system("bench"),
        )
        for transport in ("streamable_http", "stdio")
    }
    results = {}
    with harness.gunicorn(code, workers=args.workers) as port:
        url = f"http://127.0.0.1:{port}"
        harness.log(f"streamable HTTP: {calls} calls of each tool")
        key = agents["streamable_http"].raw_key
        results["streamable_http"] = asyncio.run(_over_http(url, key, calls))
        harness.log(f"stdio: {calls} calls of each tool")
        results["stdio"] = asyncio.run(_over_stdio(url, agents["stdio"].raw_key, calls))

    rows = [
        (transport, tool, figures["p50_ms"], figures["p95_ms"], figures["p99_ms"])
        for transport, tools in results.items()
        for tool, figures in tools.items()
    ]
    print(harness.table(["transport", "tool", "p50 ms", "p95 ms", "p99 ms"], rows))
    verdict = all(
        results[transport]["get_budget"]["p99_ms"] < TARGET_P99_MS for transport in results
    )
    print(f"{'PASS' if verdict else 'MISS'}  get_budget p99 < {TARGET_P99_MS} ms")
    harness.write_json(
        args.output,
        {
            "benchmark": "mcp",
            "target_get_budget_p99_ms_below": TARGET_P99_MS,
            "machine": harness.machine_info(code),
            "result": {"calls": calls, "transports": results, "pass": verdict},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
