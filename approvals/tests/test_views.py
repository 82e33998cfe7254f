"""The portal's approvals queue: the same services as Slack and the API, permission
checked on the server, another team's request a 404."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agentwallet.tests.test_portal import signed_in, user_with
from approvals.models import ApprovalRequest, CapBump
from conftest import card_for
from wallets.models import TeamLead


def over_the_daily_cap(network, provisioned) -> int:
    card = card_for(provisioned, "aws")
    assert network.authorize(card, "499.00").json()["decision"] == "approved"
    body = network.authorize(card, "5.00").json()
    assert body["reason"] == "daily_cap_exceeded"
    return body["approval_id"]


@pytest.fixture
def pending(alice, network) -> int:
    return over_the_daily_cap(network, alice)


def test_the_queue_shows_what_an_approver_needs(pending, alice):
    page = signed_in(user_with("Finance")).get("/approvals/").content.decode()
    assert "<h1>Approvals</h1>" in page
    assert "alice-agent" in page
    assert "alice@example.com" in page
    assert "daily" in page
    assert ">Approve</button>" in page
    assert ">Deny</button>" in page


def test_approve_bumps_the_cap_and_the_retry_passes(pending, alice, network):
    client = signed_in(user_with("Finance", "fin"))
    response = client.post(f"/approvals/{pending}/approve", {"amount": "25.00", "note": "ok"})
    assert response.status_code == 302
    request = ApprovalRequest.objects.get(pk=pending)
    assert (request.status, request.decided_by, request.decided_via) == (
        "approved",
        "fin",
        "portal",
    )
    assert CapBump.objects.get(approval=request).amount.amount == Decimal("25.00")
    assert network.authorize(card_for(alice, "aws"), "5.00").json()["decision"] == "approved"
    # Decided once: a second click (or Slack's) changes nothing and says so.
    again = client.post(f"/approvals/{pending}/deny", headers={"HX-Request": "true"})
    assert "already approved" in again.content.decode()
    assert ApprovalRequest.objects.get(pk=pending).status == "approved"


def test_deny_with_htmx_answers_the_queue_fragment(pending):
    client = signed_in(user_with("Finance"))
    response = client.post(
        f"/approvals/{pending}/deny", {"note": "runaway"}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert "<html" not in page
    assert f"Denied request {pending}." in page
    assert ApprovalRequest.objects.get(pk=pending).status == "denied"


def test_an_invalid_amount_is_an_inline_error_and_changes_nothing(pending):
    client = signed_in(user_with("Finance"))
    for amount in ("lots", "1_000", "-5", "12.345"):
        response = client.post(
            f"/approvals/{pending}/approve", {"amount": amount}, headers={"HX-Request": "true"}
        )
        assert response.status_code == 200
        assert "Nothing changed." in response.content.decode()
    assert ApprovalRequest.objects.get(pk=pending).status == "pending"
    assert not CapBump.objects.exists()


def test_a_viewer_sees_no_buttons_and_a_forged_post_is_refused(pending):
    client = signed_in(user_with("Viewer"))
    page = client.get("/approvals/").content.decode()
    assert ">Approve</button>" not in page
    assert client.post(f"/approvals/{pending}/approve").status_code == 403
    assert ApprovalRequest.objects.get(pk=pending).status == "pending"


def test_a_lead_decides_their_teams_requests_only(pending, alice, bob, network):
    bobs = over_the_daily_cap(network, bob)
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    page = client.get("/approvals/").content.decode()
    assert "alice-agent" in page
    assert "bob-agent" not in page
    assert client.post(f"/approvals/{bobs}/approve").status_code == 404
    assert client.post(f"/approvals/{pending}/approve").status_code == 302
    assert ApprovalRequest.objects.get(pk=bobs).status == "pending"


def test_anonymous_is_sent_to_sign_in(pending, client):
    assert client.get("/approvals/")["Location"].startswith("/accounts/login/")
    assert client.post(f"/approvals/{pending}/approve")["Location"].startswith("/accounts/login/")


def test_the_queue_costs_the_same_queries_whatever_its_length(provision, network):
    client = signed_in(user_with("Finance"))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/approvals/").status_code == 200
        return len(captured)

    over_the_daily_cap(network, provision(name="q0", email="q0@example.com"))
    few = queries()
    for n in range(1, 5):
        over_the_daily_cap(network, provision(name=f"q{n}", email=f"q{n}@example.com"))
    assert queries() == few


def test_the_dashboard_decides_in_one_click_and_refreshes_its_panels(pending, alice, network):
    client = signed_in(user_with("Finance", "fin"))
    board = client.get("/").content.decode()
    assert f'hx-post="/approvals/{pending}/approve"' in board
    assert 'aria-label="Approve 5.00 USD for alice-agent"' in board
    panels = client.post(
        f"/approvals/{pending}/approve", {"from": "dashboard"}, headers={"HX-Request": "true"}
    ).content.decode()
    assert "<html" not in panels
    assert f"Approved request {pending}." in panels
    assert "Nothing waits for a decision." in panels
    assert 'data-testid="day-spent-USD"' in panels
    bump = CapBump.objects.get(approval_id=pending)
    assert (bump.amount.amount, bump.approval.decided_via) == (Decimal("5.00"), "portal")
    assert network.authorize(card_for(alice, "aws"), "5.00").json()["decision"] == "approved"


def test_a_plain_post_from_the_dashboard_returns_to_it(pending):
    client = signed_in(user_with("Finance"))
    response = client.post(f"/approvals/{pending}/deny", {"from": "dashboard"})
    assert response["Location"] == "/"
    assert f"Denied request {pending}." in client.get("/").content.decode()
    assert ApprovalRequest.objects.get(pk=pending).status == "denied"


def test_a_viewer_gets_no_decide_buttons_on_the_dashboard(pending):
    client = signed_in(user_with("Viewer"))
    board = client.get("/").content.decode()
    assert "alice-agent" in board
    assert f"/approvals/{pending}/approve" not in board
    forged = client.post(f"/approvals/{pending}/approve", {"from": "dashboard"})
    assert forged.status_code == 403
    assert ApprovalRequest.objects.get(pk=pending).status == "pending"


def test_the_queue_shows_the_declined_charge_and_the_agents_top_traces(alice, network):
    card = card_for(alice, "aws")
    for amount, trace in (("15.00", "owner/repo#12"), ("12.00", "PR-7"), ("470.00", None)):
        extra = {"trace_id": trace} if trace else {}
        assert network.authorize(card, amount, **extra).json()["decision"] == "approved"
    declined = network.authorize(card, "20.00", merchant_name="AWS EMEA")
    assert declined.json()["reason"] == "daily_cap_exceeded"
    page = signed_in(user_with("Finance")).get("/approvals/").content.decode()
    assert "AWS EMEA" in page
    assert '<span class="money">20.00 USD</span>' in page
    assert page.index("owner/repo#12</a>") < page.index('PR-7</a> <span class="money">12.00 USD')
    assert 'href="/traces/owner%2Frepo%2312/"' in page


def test_the_queue_shows_a_declined_x402_payment(alice, alice_client, starter_policy):
    from wallets.tests.x402_requirements import PAY_TO, requirement, v2_header

    starter_policy.daily_cap = "1.00"
    starter_policy.save()
    declined = alice_client.post(
        f"/api/agents/{alice.agent.pk}/x402/pay",
        {"payment_required": v2_header(requirement("2000000")), "resource": "https://x.dev/a"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert declined.json()["error"]["code"] == "daily_cap_exceeded"

    page = signed_in(user_with("Finance")).get("/approvals/").content.decode()

    assert f'x402 to <code class="small">{PAY_TO[:11]}…</code>' in page
    assert '<span class="money">2.00 USD</span> <span class="muted small">USDC</span>' in page
