from __future__ import annotations

from decimal import Decimal

import pytest

from approvals.models import ApprovalRequest, CapBump
from conftest import card_for


@pytest.fixture
def request_id(alice, network):
    network.authorize(card_for(alice, "aws"), "499.00")
    return network.authorize(card_for(alice, "aws"), "5.00").json()["approval_id"]


def test_staff_lists_filters_and_reads_requests(request_id, staff_client):
    listed = staff_client.get("/api/approvals", {"status": "pending"}).json()["results"]
    assert [item["id"] for item in listed] == [request_id]
    assert staff_client.get("/api/approvals", {"status": "approved"}).json()["results"] == []
    detail = staff_client.get(f"/api/approvals/{request_id}").json()
    assert detail["scope"] == "daily"
    assert detail["requested_amount"] == {"amount": "5.00", "currency": "USD"}
    assert detail["bump"] is None


def test_staff_approves_with_an_edited_amount_and_a_note(request_id, staff_client, alice, network):
    response = staff_client.post(
        f"/api/approvals/{request_id}/approve",
        {"amount": {"amount": "25.00", "currency": "USD"}, "note": "release week"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "approved"
    assert body["decided_via"] == "api"
    assert body["note"] == "release week"
    assert body["bump"]["amount"] == {"amount": "25.00", "currency": "USD"}
    assert network.authorize(card_for(alice, "aws"), "25.00").json()["decision"] == "approved"


def test_staff_denies(request_id, staff_client):
    response = staff_client.post(f"/api/approvals/{request_id}/deny", {"note": "no"}, format="json")
    assert response.json()["status"] == "denied"
    again = staff_client.post(f"/api/approvals/{request_id}/approve", {}, format="json")
    assert again.status_code == 409
    assert CapBump.objects.count() == 0


def test_agents_see_their_requests_but_cannot_decide_them(request_id, alice_client, bob_client):
    assert alice_client.get(f"/api/approvals/{request_id}").status_code == 200
    assert (
        alice_client.post(f"/api/approvals/{request_id}/approve", {}, format="json").status_code
        == 403
    )
    assert bob_client.get(f"/api/approvals/{request_id}").status_code == 404
    assert (
        bob_client.post(f"/api/approvals/{request_id}/approve", {}, format="json").status_code
        == 404
    )
    assert bob_client.get("/api/approvals").json()["results"] == []
    assert ApprovalRequest.objects.get(pk=request_id).status == "pending"


def test_an_agent_asks_ahead(alice, alice_client):
    response = alice_client.post(
        f"/api/agents/{alice.agent.pk}/approvals",
        {
            "scope": "trace",
            "trace_id": "PR-9",
            "reason": "big migration",
            "amount": {"amount": "30.00", "currency": "USD"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["origin"], body["scope_key"], body["status"]) == ("agent", "trace:PR-9", "pending")
    again = alice_client.post(
        f"/api/agents/{alice.agent.pk}/approvals",
        {
            "scope": "trace",
            "trace_id": "PR-9",
            "reason": "again",
            "amount": {"amount": "30.00", "currency": "USD"},
        },
        format="json",
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"scope": "weekly", "amount": {"amount": "1", "currency": "USD"}, "reason": "x"},
        {"scope": "daily", "amount": {"amount": "-1", "currency": "USD"}, "reason": "x"},
        {"scope": "daily", "amount": {"amount": "1", "currency": "EUR"}, "reason": "x"},
        {"scope": "daily", "amount": {"amount": "1" * 30, "currency": "USD"}, "reason": "x"},
        {"scope": "trace", "amount": {"amount": "1", "currency": "USD"}, "reason": "x"},
        {"scope": "vendor", "amount": {"amount": "1", "currency": "USD"}, "reason": "x"},
        {
            "scope": "vendor",
            "vendor": "nope",
            "amount": {"amount": "1", "currency": "USD"},
            "reason": "x",
        },
        {"scope": "daily", "amount": {"amount": "1", "currency": "USD"}},
    ],
)
def test_bad_asks_are_4xx_and_write_nothing(alice, alice_client, payload):
    response = alice_client.post(f"/api/agents/{alice.agent.pk}/approvals", payload, format="json")
    assert 400 <= response.status_code < 500
    assert ApprovalRequest.objects.count() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"amount": {"amount": "0", "currency": "USD"}},
        {"amount": {"amount": "5", "currency": "EUR"}},
        {"amount": "5"},
        {"note": 5},
        {"extra": True},
    ],
)
def test_bad_approvals_are_4xx_and_change_nothing(request_id, staff_client, payload):
    response = staff_client.post(f"/api/approvals/{request_id}/approve", payload, format="json")
    assert response.status_code == 400
    assert ApprovalRequest.objects.get(pk=request_id).status == "pending"
    assert CapBump.objects.count() == 0


def test_admin_approves_through_the_service(request_id, admin_client):
    response = admin_client.post(
        "/admin/approvals/approvalrequest/",
        {"action": "approve_selected", "_selected_action": [request_id]},
    )
    assert response.status_code == 302
    request = ApprovalRequest.objects.get(pk=request_id)
    assert (request.status, request.decided_via) == ("approved", "admin")
    assert CapBump.objects.get().amount.amount == Decimal("5.00")


def test_approval_list_query_count_is_fixed(
    request_id, staff_client, django_assert_max_num_queries
):
    with django_assert_max_num_queries(4):
        assert staff_client.get("/api/approvals").status_code == 200


def test_a_policy_can_set_how_long_bumps_last(request_id, staff_client):
    from datetime import timedelta

    from django.utils import timezone

    from policies.models import Policy

    Policy.objects.filter(slug="starter").update(bump_valid_hours=4)
    before = timezone.now()
    staff_client.post(f"/api/approvals/{request_id}/approve", {}, format="json")
    bump = CapBump.objects.get()
    assert before + timedelta(hours=4) <= bump.valid_until <= timezone.now() + timedelta(hours=4)
