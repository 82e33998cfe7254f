"""POST /api/policies/{slug}/what-if: the period's authorizations replayed under a draft,
on a ledger whose answer is known, writing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from approvals.models import ApprovalRequest, CapBump
from cards.services import card_freeze
from conftest import card_for
from ledger.models import Authorization, LedgerEntry, SpendCounter
from policies.models import Policy, PolicyChange
from wallets.actors import Actor

DAY = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
PERIOD = {"since": "2026-11-01T00:00:00Z", "until": "2026-11-20T00:00:00Z"}


def at(network, when: datetime, card, amount: str, **extra):
    with time_machine.travel(when, tick=False):
        return network.authorize(card, amount, **extra).json()


@pytest.fixture
def day_of_spend(alice, bob, network):
    """Under the starter's $500 day: 200 (captured at 150, the rest reversed) and 200
    approved, 151 declined (the daily cap: 501); a charge on a frozen card; and Bob's 400 (the
    same policy, his own windows)."""
    aws = card_for(alice, "aws")
    first = at(network, DAY, aws, "200.00")
    with time_machine.travel(DAY + timedelta(minutes=1), tick=False):
        assert network.capture(first["id"], "150.00").status_code == 201
        assert network.reverse(first["id"]).status_code in (200, 201)  # the other 50 back
    assert at(network, DAY + timedelta(hours=1), aws, "200.00")["decision"] == "approved"
    third = at(network, DAY + timedelta(hours=2), aws, "151.00")
    assert third["reason"] == "daily_cap_exceeded"
    openai = card_for(alice, "openai")
    card_freeze(card=openai, actor=Actor.system("test"), reason="test")
    assert at(network, DAY + timedelta(hours=3), openai, "5.00")["reason"] == "card_frozen"
    assert at(network, DAY, card_for(bob, "aws"), "400.00")["decision"] == "approved"
    return alice


def what_if(staff_client, draft, **period):
    return staff_client.post(
        "/api/policies/starter/what-if", {"draft": draft, **PERIOD, **period}, format="json"
    )


def counts() -> dict[str, int]:
    models = (
        Authorization,
        LedgerEntry,
        SpendCounter,
        Policy,
        PolicyChange,
        ApprovalRequest,
        CapBump,
    )
    return {model.__name__: model.objects.count() for model in models}


def test_a_tighter_day_declines_what_its_entries_leave_no_room_for(day_of_spend, staff_client):
    before = counts()
    response = what_if(staff_client, {"daily_cap": {"amount": "301.00", "currency": "USD"}})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["authorizations"] == 5  # Alice's four and Bob's one, both on the starter
    assert body["actual"] == {
        "declined": 2,
        "declined_amount": {"amount": "156.00", "currency": "USD"},
        "by_reason": {"card_frozen": 1, "daily_cap_exceeded": 1},
    }
    # 150 (what the first came to) + 200 > 301: the second is declined; 150 + 151 fits.
    what = body["what_if"]
    assert what["declined"] == 3
    assert what["declined_amount"] == {"amount": "605.00", "currency": "USD"}
    assert what["by_reason"] == {"card_frozen": 1, "daily_cap_exceeded": 2}
    assert [agent["agent"] for agent in what["agents"]] == ["bob-agent", "alice-agent"]
    assert what["agents"][1]["declined_amount"]["amount"] == "205.00"
    assert (body["newly_declined"], body["newly_approved"]) == (2, 1)
    assert counts() == before  # writes nothing


def test_a_looser_day_approves_the_cap_decline_but_not_the_frozen_card(day_of_spend, staff_client):
    body = what_if(staff_client, {"daily_cap": {"amount": "1000.00", "currency": "USD"}}).json()
    assert body["what_if"]["by_reason"] == {"card_frozen": 1}
    assert (body["newly_declined"], body["newly_approved"]) == (0, 1)


def test_the_same_policy_replays_what_happened(day_of_spend, staff_client):
    body = what_if(staff_client, {"name": "Starter"}).json()
    assert body["what_if"]["by_reason"] == body["actual"]["by_reason"]
    assert (body["newly_declined"], body["newly_approved"]) == (0, 0)


def test_a_trace_cap_and_a_per_authorization_cap_in_the_draft(alice, network, staff_client):
    card = card_for(alice, "aws")
    for n in range(3):
        at(network, DAY + timedelta(hours=n), card, "8.00", trace_id="owner/repo#5")
    body = what_if(
        staff_client,
        {
            "per_trace_cap": {"amount": "10.00", "currency": "USD"},
            "per_authorization_cap": {"amount": "100.00", "currency": "USD"},
        },
    ).json()
    assert body["actual"]["declined"] == 1  # the starter's $20 per trace: 8 + 8 + 8
    assert body["what_if"]["by_reason"] == {"trace_cap_exceeded": 2}
    assert body["what_if"]["traces"] == [
        {
            "trace_id": "owner/repo#5",
            "declined": 2,
            "declined_amount": {"amount": "16.00", "currency": "USD"},
        }
    ]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"draft": {"daily_cap": {"amount": "-1", "currency": "USD"}}}, "draft"),
        ({"draft": {"daily_cap": {"amount": "10", "currency": "EUR"}}}, "draft"),
        ({"draft": {"colour": "red"}}, "draft"),
        ({"draft": {}}, "draft"),
        (
            {
                "draft": {"name": "x"},
                "since": "2026-11-20T00:00:00Z",
                "until": "2026-11-01T00:00:00Z",
            },
            "since",
        ),
        (
            {
                "draft": {"name": "x"},
                "since": "2026-01-01T00:00:00Z",
                "until": "2026-11-01T00:00:00Z",
            },
            "since",
        ),
        ({"draft": {"name": "x"}, "since": "yesterday"}, "since"),
        ({}, "draft"),
    ],
)
def test_bad_input_is_a_400_that_names_it(staff_client, db, payload, field):
    response = staff_client.post("/api/policies/starter/what-if", payload, format="json")
    assert response.status_code == 400
    assert field in str(response.json()["error"])


def test_agents_may_not_and_an_unknown_policy_is_404(alice_client, staff_client, db):
    draft = {"draft": {"name": "x"}}
    assert (
        alice_client.post("/api/policies/starter/what-if", draft, format="json").status_code == 403
    )
    assert staff_client.post("/api/policies/nope/what-if", draft, format="json").status_code == 404


def test_the_policy_page_runs_the_form_as_a_what_if_and_saves_nothing(day_of_spend):
    from agentwallet.tests.test_portal import signed_in, user_with
    from policies.tests.test_views import HTMX, form_data

    policy = Policy.objects.get(slug="starter")
    finance = signed_in(user_with("Finance"))
    page = finance.get("/policies/starter/").content.decode()
    assert 'hx-post="/policies/starter/what-if/"' in page
    assert "What if (last 30 days)" in page
    before = counts()
    data = form_data(policy, daily_cap="301")
    with time_machine.travel(DAY + timedelta(days=1), tick=False):
        answer = finance.post("/policies/starter/what-if/", data, headers=HTMX)
        whole = finance.post("/policies/starter/what-if/", data)  # without JavaScript
    body = answer.content.decode()
    assert answer.status_code == 200
    assert "<html" not in body
    assert 'data-testid="actual-declined">2<' in body
    assert 'data-testid="what-if-declined">3<' in body
    assert "2 approved charges would have been declined; 1 declined one would have passed" in body
    assert "<td>bob-agent</td>" in body
    assert "<title>What if" in whole.content.decode()
    assert counts() == before
    assert Policy.objects.get(slug="starter").daily_cap.amount == 500

    refused = finance.post(
        "/policies/starter/what-if/", form_data(policy, daily_cap="-5"), headers=HTMX
    )
    assert "Fix the values marked in the form first" in refused.content.decode()
    viewer = signed_in(user_with("Viewer", "vera"))
    assert viewer.post("/policies/starter/what-if/", data).status_code == 403
    assert finance.get("/policies/starter/what-if/").status_code == 405


def test_a_vendor_cap_in_the_draft_declines_that_vendors_charges(day_of_spend, staff_client):
    draft = {
        "vendor_caps": [{"vendor": "aws", "monthly_cap": {"amount": "250.00", "currency": "USD"}}]
    }
    body = what_if(staff_client, draft).json()
    # Alice: 150, then 200 (350 > 250) and 151 (301 > 250) declined; Bob's 400 alone > 250.
    assert body["what_if"]["by_reason"] == {"card_cap_exceeded": 3, "card_frozen": 1}
