"""A thin Slack client: slack_sdk's WebClient against SLACK_API_URL."""

from __future__ import annotations

from django.conf import settings
from slack_sdk import WebClient


def slack_configured() -> bool:
    return bool(settings.SLACK_BOT_TOKEN)


def slack_client() -> WebClient:
    base_url = settings.SLACK_API_URL
    if not base_url.endswith("/"):
        base_url += "/"
    return WebClient(token=settings.SLACK_BOT_TOKEN, base_url=base_url, timeout=10)
