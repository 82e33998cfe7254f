"""Cap decline -> Slack card -> signed click -> bump -> the retried charge passes ->
the card shows the outcome. Celery runs eagerly here; test_worker.py runs a real one."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
import time_machine
from django.utils import timezone

from approvals.models import ApprovalRequest, Approver, CapBump, OutboxMessage
from conftest import card_for
from wallets.models import Principal

ALICE_SLACK = "U0ALICE001"


@pytest.fixture
def owner(alice):
    Principal.objects.filter(pk=alice.agent.principal_id).update(slack_user_id=ALICE_SLACK)
    return alice


def approval_cards(fake_slack):
    return [
        call
        for call in fake_slack.successful("chat.postMessage")
        if any(block["type"] == "actions" for block in call.body.get("blocks", []))
    ]


def hit_daily_cap(network, agent, capture):
    with capture(execute=True):
        assert network.authorize(card_for(agent, "aws"), "499.00").json()["decision"] == (
            "approved"
        )
    with capture(execute=True):
        body = network.authorize(card_for(agent, "aws"), "5.00", trace_id="PR-7").json()
    assert body["reason"] == "daily_cap_exceeded"
    return body


def test_the_whole_flow_from_decline_to_approved_retry(
    owner, network, fake_slack, slack_clicks, django_capture_on_commit_callbacks
):
    declined = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)
    approval_id = declined["approval_id"]

    [card] = approval_cards(fake_slack)
    text = str(card.body["blocks"])
    assert card.body["channel"] == "C0APPROVALS"
    assert "alice-agent hit its rolling 24h cap" in text
    assert f"<@{ALICE_SLACK}>" in text
    assert "499.00 USD" in text  # spent so far
    assert "500.00 USD" in text  # the cap
    assert "Amazon Web Services (AWS) 5.00 USD" in text  # the triggering charge
    assert "`PR-7`" in text
    buttons = card.body["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == ["approve", "approve_amount", "deny"]
    assert {b["value"] for b in buttons} == {str(approval_id)}
    request = ApprovalRequest.objects.get(pk=approval_id)
    assert request.slack_ts == fake_slack.successful("chat.postMessage")[-1].body.get(
        "ts", request.slack_ts
    )

    with django_capture_on_commit_callbacks(execute=True):
        response = slack_clicks.click(approval_id, "approve", ALICE_SLACK)
    assert response.status_code == 200
    request.refresh_from_db()
    assert request.status == "approved"
    assert request.decided_via == "slack"
    assert ALICE_SLACK in request.decided_by
    bump = CapBump.objects.get(approval=request)
    assert bump.amount.amount == Decimal("5.00")
    assert bump.scope_key == "daily"

    [update] = fake_slack.wait_for("chat.update")
    assert update.body["ts"] == request.slack_ts
    assert "Approved by" in str(update.body["blocks"])
    assert all(block["type"] != "actions" for block in update.body["blocks"])

    retried = network.authorize(card_for(owner, "aws"), "5.00", trace_id="PR-7").json()
    assert retried["decision"] == "approved"
    # The bump covers exactly what was approved: one more cent is declined again.
    assert network.authorize(card_for(owner, "aws"), "1.01").json()["reason"] == (
        "daily_cap_exceeded"
    )


def test_bump_lasts_until_the_end_of_the_policys_day(
    owner, network, fake_slack, slack_clicks, django_capture_on_commit_callbacks
):
    with time_machine.travel("2026-06-10 20:00+00:00", tick=False):
        approval_id = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)[
            "approval_id"
        ]
        slack_clicks.click(approval_id, "approve", ALICE_SLACK)
    bump = CapBump.objects.get()
    assert bump.valid_until.isoformat() == "2026-06-11T00:00:00+00:00"  # starter: UTC


def test_second_click_changes_nothing_and_says_so(
    owner, network, fake_slack, slack_clicks, django_capture_on_commit_callbacks
):
    approval_id = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)["approval_id"]
    with django_capture_on_commit_callbacks(execute=True):
        slack_clicks.click(approval_id, "approve", ALICE_SLACK)
    with django_capture_on_commit_callbacks(execute=True):
        slack_clicks.click(approval_id, "deny", ALICE_SLACK)
    assert ApprovalRequest.objects.get(pk=approval_id).status == "approved"
    assert CapBump.objects.count() == 1
    [ephemeral] = fake_slack.successful("chat.postEphemeral")
    assert "Already approved" in ephemeral.body["text"]
    assert ephemeral.body["user"] == ALICE_SLACK


def test_an_unknown_slack_user_is_refused_in_private(
    owner, network, fake_slack, slack_clicks, django_capture_on_commit_callbacks
):
    approval_id = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)["approval_id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = slack_clicks.click(approval_id, "approve", "U0STRANGER")
    assert response.status_code == 200
    assert ApprovalRequest.objects.get(pk=approval_id).status == "pending"
    [refusal] = fake_slack.successful("chat.postEphemeral")
    assert refusal.body["user"] == "U0STRANGER"
    assert "not allowed" in refusal.body["text"]


def test_a_portal_user_with_the_permission_may_decide(
    owner, network, fake_slack, slack_clicks, django_capture_on_commit_callbacks, django_user_model
):
    from django.contrib.auth.models import Permission

    lead = django_user_model.objects.create_user("lead", password="x")
    lead.user_permissions.add(Permission.objects.get(codename="approve_requests"))
    Approver.objects.create(user=lead, slack_user_id="U0LEAD0001")
    nobody = django_user_model.objects.create_user("nobody", password="x")
    Approver.objects.create(user=nobody, slack_user_id="U0NOBODY01")
    approval_id = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)["approval_id"]

    with django_capture_on_commit_callbacks(execute=True):
        slack_clicks.click(approval_id, "deny", "U0NOBODY01")
    assert ApprovalRequest.objects.get(pk=approval_id).status == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        slack_clicks.click(approval_id, "deny", "U0LEAD0001")
    request = ApprovalRequest.objects.get(pk=approval_id)
    assert request.status == "denied"
    assert request.decided_by.startswith("lead")


def test_approve_with_amount_opens_a_modal_and_grants_that_amount(
    owner, network, fake_slack, slack_clicks, django_capture_on_commit_callbacks
):
    approval_id = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)["approval_id"]
    slack_clicks.click(approval_id, "approve_amount", ALICE_SLACK)
    [modal] = fake_slack.successful("views.open")
    assert modal.body["view"]["private_metadata"] == str(approval_id)

    bad = slack_clicks.submit_amount(approval_id, "lots", ALICE_SLACK)
    assert bad.json() == {
        "response_action": "errors",
        "errors": {"amount": "Enter an amount such as 25.00."},
    }
    assert ApprovalRequest.objects.get(pk=approval_id).status == "pending"

    with django_capture_on_commit_callbacks(execute=True):
        ok = slack_clicks.submit_amount(approval_id, "40.00", ALICE_SLACK, note="one-off")
    assert ok.status_code == 200
    request = ApprovalRequest.objects.get(pk=approval_id)
    assert request.approved_amount.amount == Decimal("40.00")
    assert request.note == "one-off"
    assert network.authorize(card_for(owner, "aws"), "40.00").json()["decision"] == "approved"


@pytest.mark.parametrize("tamper", ["secret", "stale", "body", "missing"])
def test_forged_or_replayed_clicks_are_refused_and_logged(
    owner, network, fake_slack, slack_clicks, caplog, tamper, django_capture_on_commit_callbacks
):
    approval_id = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)["approval_id"]
    kwargs = {
        "secret": {"secret": "not-the-secret"},
        "stale": {"timestamp": int(time.time()) - 301},
        "body": {"signature": "v0=" + "0" * 64},
        "missing": {"signature": " "},
    }[tamper]
    response = slack_clicks.click(approval_id, "approve", ALICE_SLACK, **kwargs)
    assert response.status_code == 401
    assert ApprovalRequest.objects.get(pk=approval_id).status == "pending"
    assert "refused Slack request" in caplog.text


def test_slack_failing_then_recovering_delivers_exactly_once(
    owner, network, fake_slack, django_capture_on_commit_callbacks
):
    from approvals.delivery import outbox_deliver

    # Deliver by hand (as the worker would), so each attempt can be looked at.
    hit_daily_cap(network, owner, lambda execute: django_capture_on_commit_callbacks())
    message = OutboxMessage.objects.get(kind="approval_request")
    fake_slack.fail_next = 1  # Slack answers 500 once
    first = outbox_deliver(message_id=message.pk)
    assert (first.status, first.retry_in) == ("pending", 2)
    message.refresh_from_db()
    assert message.attempts == 1
    assert "internal_error" in message.last_error
    assert approval_cards(fake_slack) == []

    assert outbox_deliver(message_id=message.pk).status == "sent"  # the retry
    assert outbox_deliver(message_id=message.pk).status == "sent"  # a late duplicate retry
    assert len(approval_cards(fake_slack)) == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("sent", 2)


def test_the_delivery_task_retries_with_backoff(
    owner, network, fake_slack, django_capture_on_commit_callbacks
):
    from celery.exceptions import Retry

    from approvals.outbox import deliver_outbox_message_task

    hit_daily_cap(network, owner, lambda execute: django_capture_on_commit_callbacks())
    message = OutboxMessage.objects.get(kind="approval_request")
    fake_slack.fail_next = 2
    with pytest.raises(Retry):
        deliver_outbox_message_task.run(message.pk)
    with pytest.raises(Retry):
        deliver_outbox_message_task.run(message.pk)
    message.refresh_from_db()
    assert message.attempts == 2
    assert message.next_attempt_at > timezone.now()
    assert deliver_outbox_message_task.run(message.pk) == "sent"
    assert len(approval_cards(fake_slack)) == 1


def test_without_a_slack_token_messages_stay_in_the_outbox(
    owner, network, settings, django_capture_on_commit_callbacks
):
    settings.SLACK_BOT_TOKEN = ""
    hit_daily_cap(network, owner, django_capture_on_commit_callbacks)
    message = OutboxMessage.objects.get(kind="approval_request")
    assert message.status == "held"
    assert message.payload["agent"]["name"] == "alice-agent"


def test_further_declines_attach_instead_of_spamming(
    owner, network, fake_slack, django_capture_on_commit_callbacks
):
    hit_daily_cap(network, owner, django_capture_on_commit_callbacks)
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            network.authorize(card_for(owner, "aws"), "7.00")
    assert ApprovalRequest.objects.get().declines_attached == 4
    assert len(approval_cards(fake_slack)) == 1


def test_early_warnings_fire_once_per_cap_and_window(
    owner, network, fake_slack, django_capture_on_commit_callbacks
):
    aws = card_for(owner, "aws")
    for amount in ("300.00", "110.00", "1.00", "70.00", "1.00"):  # 60%, 82%, 82.2%, 96%, 96.2%
        with django_capture_on_commit_callbacks(execute=True):
            assert network.authorize(aws, amount).json()["decision"] == "approved"
    warnings = OutboxMessage.objects.filter(kind="warning", payload__scope="daily")
    assert sorted(w.payload["threshold"] for w in warnings) == [80, 95]
    texts = [call.body["text"] for call in fake_slack.successful("chat.postMessage")]
    assert sum("passed 80% of its daily cap" in t for t in texts) == 1
    assert sum("passed 95% of its daily cap" in t for t in texts) == 1
    eighty = warnings.get(payload__threshold=80).payload
    assert eighty["spent"] == {"amount": "410.00", "currency": "USD"}
    assert eighty["projected"] is not None


def test_pending_requests_expire_and_the_card_says_so(
    owner, network, fake_slack, django_capture_on_commit_callbacks
):
    from approvals.services import approvals_expire

    approval_id = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)["approval_id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert approvals_expire(now=timezone.now() + timezone.timedelta(hours=25)) == 1
    assert ApprovalRequest.objects.get(pk=approval_id).status == "expired"
    assert "Expired" in str(fake_slack.wait_for("chat.update")[0].body["blocks"])


def test_the_bump_shows_in_the_budget(
    owner, network, fake_slack, slack_clicks, alice_client, django_capture_on_commit_callbacks
):
    approval_id = hit_daily_cap(network, owner, django_capture_on_commit_callbacks)["approval_id"]
    slack_clicks.click(approval_id, "approve", ALICE_SLACK)
    budget = alice_client.get(f"/api/agents/{owner.agent.pk}/budget").json()
    assert budget["rolling_24h"]["bump"] == {"amount": "5.00", "currency": "USD"}
    assert budget["rolling_24h"]["remaining"] == {"amount": "6.00", "currency": "USD"}
    [bump] = budget["bumps"]
    assert bump["scope_key"] == "daily"
    assert bump["approval_id"] == approval_id
