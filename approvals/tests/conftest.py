from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from approvals.tests.fake_slack import TOKEN, start_fake_slack

SIGNING_SECRET = "slack-signing-secret-for-tests"


@pytest.fixture
def fake_slack(settings: Any):
    fake = start_fake_slack()
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_API_URL = fake.base_url
    settings.SLACK_SIGNING_SECRET = SIGNING_SECRET
    settings.SLACK_APPROVALS_CHANNEL = "C0APPROVALS"
    yield fake
    fake.server.shutdown()


def slack_signature(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


class SlackClicks:
    """Posts interactivity payloads to /slack/interactivity, signed as Slack signs them."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def post(
        self,
        payload: dict[str, Any],
        *,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        signature: str | None = None,
    ) -> Any:
        body = urlencode({"payload": json.dumps(payload)})
        ts = int(time.time()) if timestamp is None else timestamp
        return self.client.post(
            "/slack/interactivity",
            data=body,
            content_type="application/x-www-form-urlencoded",
            HTTP_X_SLACK_REQUEST_TIMESTAMP=str(ts),
            HTTP_X_SLACK_SIGNATURE=signature or slack_signature(body, ts, secret),
        )

    def click(self, approval_id: int, action: str, user: str, **kwargs: Any) -> Any:
        return self.post(
            {
                "type": "block_actions",
                "user": {"id": user, "username": user},
                "channel": {"id": "C0APPROVALS"},
                "trigger_id": f"trig-{time.monotonic_ns()}",
                "container": {"type": "message", "channel_id": "C0APPROVALS"},
                "actions": [
                    {"action_id": action, "value": str(approval_id), "action_ts": str(time.time())}
                ],
            },
            **kwargs,
        )

    def submit_amount(self, approval_id: int, amount: str, user: str, note: str = "") -> Any:
        return self.post(
            {
                "type": "view_submission",
                "user": {"id": user},
                "view": {
                    "callback_id": "approve_amount",
                    "private_metadata": str(approval_id),
                    "state": {
                        "values": {
                            "amount": {"value": {"value": amount}},
                            "note": {"value": {"value": note}},
                        }
                    },
                },
            }
        )


@pytest.fixture
def slack_clicks(client: Any) -> SlackClicks:
    return SlackClicks(client)
