"""/slack/interactivity against hostile input: JSON 4xx, never a 500, nothing decided."""

from __future__ import annotations

import time

import pytest

from approvals.models import ApprovalRequest
from approvals.tests.test_slack_flow import ALICE_SLACK, hit_daily_cap
from wallets.models import Principal


@pytest.fixture
def pending(alice, network, fake_slack, django_capture_on_commit_callbacks):
    Principal.objects.filter(pk=alice.agent.principal_id).update(slack_user_id=ALICE_SLACK)
    return hit_daily_cap(network, alice, django_capture_on_commit_callbacks)["approval_id"]


@pytest.mark.parametrize("timestamp", ["abc", "", "١٢٣", "1e9", "-5", "9" * 40])
def test_a_malformed_timestamp_is_refused_with_json(pending, slack_clicks, timestamp):
    response = slack_clicks.client.post(
        "/slack/interactivity",
        data="payload=%7B%7D",
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=timestamp,
        HTTP_X_SLACK_SIGNATURE="v0=" + "0" * 64,
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"


def test_a_non_ascii_slack_signature_is_refused(pending, slack_clicks):
    response = slack_clicks.click(
        pending, "approve", ALICE_SLACK, signature=("v0=" + "é" * 64).encode().decode("latin-1")
    )
    assert response.status_code == 401


def click(action_list=None, **overrides):
    payload = {
        "type": "block_actions",
        "user": {"id": ALICE_SLACK},
        "channel": {"id": "C0APPROVALS"},
        "trigger_id": "trig-1",
    }
    if action_list is not None:
        payload["actions"] = action_list
    return payload | overrides


@pytest.mark.parametrize(
    "payload",
    [
        click([]),
        click(None),
        click([{"action_id": "approve", "value": "abc"}]),
        click([{"action_id": "approve", "value": "-1"}]),
        click([{"action_id": "approve"}]),
        click(["approve"]),
        click([{"action_id": "self_destruct", "value": "1"}]),
        click([{"action_id": "approve", "value": "1"}], user={"id": "u\x00"}),
        click([{"action_id": "approve", "value": "1"}], user="U1"),
        click([{"action_id": "approve_amount", "value": "1"}], trigger_id=None),
        {"type": "view_submission", "user": {"id": ALICE_SLACK}, "view": {"private_metadata": "x"}},
        {
            "type": "view_submission",
            "user": {"id": ALICE_SLACK},
            "view": {
                "private_metadata": "x",
                "state": {"values": {"amount": {"value": {"value": "5"}}}},
            },
        },
        {"type": "view_submission", "user": {"id": ALICE_SLACK}, "view": "x"},
        [],
        "just a string",
    ],
    ids=lambda payload: str(payload)[:60],
)
def test_signed_payloads_of_other_shapes_are_refused_with_json(pending, slack_clicks, payload):
    response = slack_clicks.post(payload)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "malformed_payload"
    assert ApprovalRequest.objects.get(pk=pending).status == "pending"


def test_a_payload_that_is_not_json_is_refused(pending, slack_clicks):
    body = "payload=%7Bnot-json"
    ts = int(time.time())
    from approvals.tests.conftest import slack_signature

    response = slack_clicks.client.post(
        "/slack/interactivity",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=str(ts),
        HTTP_X_SLACK_SIGNATURE=slack_signature(body, ts),
    )
    assert response.status_code == 400


def test_an_oversized_slack_body_is_refused_with_json(pending, slack_clicks):
    response = slack_clicks.client.post(
        "/slack/interactivity",
        data="payload=" + "x" * 200_000,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_SLACK_REQUEST_TIMESTAMP=str(int(time.time())),
        HTTP_X_SLACK_SIGNATURE="v0=" + "0" * 64,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_get_is_refused_with_json(slack_clicks):
    response = slack_clicks.client.get("/slack/interactivity")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
