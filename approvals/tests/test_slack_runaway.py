"""A runaway's Slack message, delivered by the outbox to the local Slack server: the
trace or agent, the last hour against its usual busy hour, the cards, the freeze."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine

from approvals.delivery import outbox_deliver
from approvals.models import OutboxMessage, OutboxStatus
from conftest import card_for
from ledger.services.runaway import runaways_sweep
from policies.services import policy_create

NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)


def test_the_runaway_message_names_the_trace_rate_baseline_and_cards(
    provision, starter_policy, network, fake_slack
):
    policy = policy_create(
        slug="freezing",
        name="Freezing",
        currency="USD",
        daily_cap=Decimal("5000"),
        monthly_cap=Decimal("50000"),
        runaway="freeze",
        default_vendors=starter_policy.default_vendors.all(),
    )
    agent = provision(name="ci-bot", email="ci@example.com", policy=policy)
    card = card_for(agent, "aws")
    with time_machine.travel(NOW - timedelta(minutes=10), tick=False):
        assert network.authorize(card, "90.00", trace_id="owner/repo#7").json()["decision"] == (
            "approved"
        )
    assert len(runaways_sweep(now=NOW)) == 2  # the agent and its trace
    for message in OutboxMessage.objects.filter(kind="runaway").order_by("id"):
        assert outbox_deliver(message_id=message.pk, now=NOW).status == OutboxStatus.SENT
    posts = fake_slack.successful("chat.postMessage")
    assert len(posts) == 2
    texts = [str(post.body["blocks"]) for post in posts]
    trace_text = next(text for text in texts if "owner/repo#7" in text)
    assert "spent 90.00 USD in the last hour" in trace_text
    assert "usual busy hour of 0.00 USD" in trace_text
    assert f"ci-bot · Amazon Web Services (AWS) •••• {card.last4}" in trace_text
    # The first message froze the cards; the other finds them frozen already.
    assert "Frozen (kill switch): ci-bot." in texts[0]
    assert "Already frozen: ci-bot." in texts[1]
    assert all(post.body["channel"] == "C0APPROVALS" for post in posts)
    assert posts[0].body["text"].startswith("Runaway: ")
