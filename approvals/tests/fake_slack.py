"""A local HTTP server speaking Slack's Web API wire format, for slack_sdk to talk to.

It answers chat.postMessage, chat.update, chat.postEphemeral and views.open the way
Slack does (JSON, `ok`, `ts`, `channel`), records every call, and can be told to fail
the next calls with an HTTP 500 and Slack's error body.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "xoxb-test-token"


@dataclass
class Call:
    method: str
    body: dict[str, Any]
    ok: bool


@dataclass
class FakeSlack:
    server: ThreadingHTTPServer
    calls: list[Call] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/api/"

    def successful(self, method: str) -> list[Call]:
        with self.lock:
            return [call for call in self.calls if call.method == method and call.ok]

    def wait_for(self, method: str, count: int = 1, timeout: float = 20.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.successful(method)
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"Slack never got {count} x {method}: {self.calls}")


def start_fake_slack() -> FakeSlack:
    counter = itertools.count(1)
    fake: FakeSlack

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                body = json.loads(raw or "{}")
            else:
                body = {key: values[0] for key, values in parse_qs(raw).items()}
            method = self.path.rsplit("/", 1)[-1]
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._answer(200, {"ok": False, "error": "invalid_auth"}, method, body)
            with fake.lock:
                failing = fake.fail_next > 0
                if failing:
                    fake.fail_next -= 1
            if failing:
                return self._answer(500, {"ok": False, "error": "internal_error"}, method, body)
            ts = f"{int(time.time())}.{next(counter):06d}"
            channel = body.get("channel", "C0APPROVALS")
            answers = {
                "chat.postMessage": {
                    "ok": True,
                    "channel": channel,
                    "ts": ts,
                    "message": {"text": body.get("text"), "ts": ts},
                },
                "chat.update": {
                    "ok": True,
                    "channel": channel,
                    "ts": body.get("ts"),
                    "text": body.get("text"),
                },
                "chat.postEphemeral": {"ok": True, "message_ts": ts},
                "views.open": {"ok": True, "view": {"id": f"V{ts}"}},
            }
            answer = answers.get(method, {"ok": False, "error": "unknown_method"})
            self._answer(200, answer, method, body)

        def _answer(
            self, status: int, answer: dict[str, Any], method: str, body: dict[str, Any]
        ) -> None:
            with fake.lock:
                fake.calls.append(
                    Call(method=method, body=body, ok=status == 200 and bool(answer.get("ok")))
                )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake = FakeSlack(server=server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake
