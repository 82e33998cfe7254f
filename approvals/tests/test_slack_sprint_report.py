"""A sprint report's Slack summary, delivered by the outbox to the local Slack server."""

from __future__ import annotations

from datetime import UTC, date, datetime

import time_machine

from approvals.delivery import outbox_deliver
from approvals.models import OutboxMessage, OutboxStatus
from conftest import card_for
from ledger.models import SprintCalendar
from ledger.services.reports import sprint_report_build


def test_the_summary_names_the_spend_its_concentration_and_links_the_report(
    alice, network, fake_slack, settings
):
    settings.AGENTWALLET_PORTAL_URL = "https://wallet.example.com/"
    SprintCalendar.objects.update_or_create(pk=1, defaults={"first_day": date(2026, 11, 2)})
    with time_machine.travel(datetime(2026, 11, 3, 9, tzinfo=UTC), tick=False):
        network.authorize(card_for(alice, "aws"), "12.00", trace_id="owner/repo#3")
        network.authorize(card_for(alice, "aws"), "3.00")
    report = sprint_report_build(
        first_day=date(2026, 11, 2), now=datetime(2026, 11, 17, tzinfo=UTC)
    )
    message = OutboxMessage.objects.get(kind="sprint_report")
    assert outbox_deliver(message_id=message.pk).status == OutboxStatus.SENT
    [post] = fake_slack.successful("chat.postMessage")
    text = str(post.body["blocks"])
    assert "Sprint 2026-11-02 to 2026-11-15" in text
    assert "*15.00 USD* spent; 80.0% of it by the top 1 trace(s); 3.00 USD on no trace" in text
    assert "`owner/repo#3` 12.00 USD" in text
    assert f"https://wallet.example.com/reports/{report.pk}/" in text
    assert post.body["channel"] == "C0APPROVALS"
