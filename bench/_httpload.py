"""Closed-loop HTTP load for the authorization endpoint, run as its own process.

`clients` connections each send a signed authorization, wait for the whole answer and
send the next, for `warmup + seconds`; only requests started in the last `seconds`
count. One asyncio loop on plain sockets: a request costs the client tens of
microseconds, so on a 2-core machine the load generator leaves the cores to gunicorn
and PostgreSQL (a thread pool of http.client used about a third of a millisecond of CPU
per request, under the GIL). Latency runs from before the connect to the last byte.

Input (JSON on stdin): {"port", "clients", "seconds", "warmup", "secret", "tag",
"path", "cards": [[card_id, mcc], ...], "hot": bool}. Output (JSON on stdout):
{"latencies_ns": [...], "outcomes": {...}, "errors": {...}}.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
import time
from collections import Counter
from typing import Any

AMOUNT = "0.05"


def request_bytes(
    *, path: str, port: int, secret: bytes, network_id: str, card: list[str]
) -> bytes:
    body = (
        f'{{"id":"{network_id}","card_id":"{card[0]}",'
        f'"amount":{{"amount":"{AMOUNT}","currency":"USD"}},'
        f'"merchant":{{"name":"bench","mcc":"{card[1]}","network_id":"","country":"US"}}}}'
    ).encode()
    stamp = int(time.time())
    digest = hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"AgentWallet-Signature: t={stamp},v1={digest}\r\n\r\n"
    ).encode()
    return head + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    chunked = False
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep_alive = False
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        return status, body, keep_alive
    if length is None:
        return status, await reader.read(), False
    return status, await reader.readexactly(length), keep_alive


def outcome_of(status: int, body: bytes) -> str:
    if status != 200:
        return f"http_{status}"
    answer = json.loads(body)
    return str(answer.get("reason") or answer.get("decision"))


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    port, path = spec["port"], spec["path"]
    secret = spec["secret"].encode()
    cards = spec["cards"]
    counter = iter(range(10**9))
    latencies: list[int] = []
    outcomes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    start = time.perf_counter_ns()
    measure_from = start + int(spec["warmup"] * 1e9)
    stop_at = measure_from + int(spec["seconds"] * 1e9)

    async def client(index: int) -> None:
        reader = writer = None
        while True:
            t0 = time.perf_counter_ns()
            if t0 >= stop_at:
                break
            n = next(counter)
            card = cards[0] if spec["hot"] else cards[n % len(cards)]
            payload = request_bytes(
                path=path, port=port, secret=secret, network_id=f"{spec['tag']}-{n}", card=card
            )
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                status, body, keep_alive = await read_response(reader)
                if not keep_alive:
                    writer.close()
                    reader = writer = None
                outcome = outcome_of(status, body)
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
                if writer is not None:
                    writer.close()
                reader = writer = None
                if t0 >= measure_from:
                    errors[type(exc).__name__] += 1
                continue
            t1 = time.perf_counter_ns()
            if t0 >= measure_from:
                latencies.append(t1 - t0)
                outcomes[outcome] += 1
        if writer is not None:
            writer.close()

    await asyncio.gather(*(client(i) for i in range(spec["clients"])))
    return {"latencies_ns": latencies, "outcomes": dict(outcomes), "errors": dict(errors)}


def main() -> None:
    spec = json.loads(sys.stdin.read())
    sys.stdout.write("started\n")
    sys.stdout.flush()
    result = asyncio.run(run(spec))
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
