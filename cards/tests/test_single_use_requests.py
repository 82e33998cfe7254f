"""An agent asks for a single-use card for one vendor, up to an amount, for a while: it
is issued when the ceiling fits the caps, closes after its one charge, and a ceiling
above the room left opens an approval request instead."""

from __future__ import annotations

from decimal import Decimal

from approvals.models import ApprovalRequest
from cards.models import Card
from conftest import merchant_of
from ledger.models import LedgerEntry
from policies.models import PolicyVendorCap


def ask(client, agent, amount="30.00", seconds=1800, **extra):
    body = {
        "vendor": "openai",
        "max_amount": {"amount": amount, "currency": "USD"},
        "expires_in_seconds": seconds,
        **extra,
    }
    return client.post(f"/api/agents/{agent.pk}/cards", body, format="json")


def test_a_single_use_card_up_to_an_amount(alice, alice_client, network):
    response = ask(alice_client, alice.agent, amount="15.00", trace_id="acme/api#5")

    assert response.status_code == 201, response.json()
    body = response.json()
    card = Card.objects.get(pk=body["card"]["id"])
    assert (card.single_use, card.is_ephemeral, card.trace_id) == (True, True, "acme/api#5")
    assert card.monthly_cap.amount == Decimal("15.00")
    assert body["number"].endswith(card.last4)
    assert body["cvc"]

    over = network.authorize(card, "15.01", **merchant_of(card))
    assert over.json()["reason"] == "card_cap_exceeded"
    first = network.authorize(card, "14.99", network_id="su-first", **merchant_of(card))
    assert first.json()["decision"] == "approved"
    second = network.authorize(card, "1.00", **merchant_of(card))
    assert second.json()["reason"] == "card_closed"
    # Its one charge still settles on the closed card, attributed to the trace.
    captured = network.capture("su-first", "14.99")
    assert captured.status_code == 201, captured.json()
    assert captured.json()["hold_state"] == "closed"
    entries = LedgerEntry.objects.filter(card=card).order_by("id")
    assert {entry.trace_id for entry in entries} == {"acme/api#5"}
    assert "capture" in [entry.kind for entry in entries]
    card.refresh_from_db()
    assert card.status == "closed"


def test_a_ceiling_above_the_room_left_opens_an_approval(alice, alice_client, starter_policy):
    starter_policy.daily_cap = Decimal("20.00")
    starter_policy.save()
    before = Card.objects.filter(agent=alice.agent).count()

    response = ask(alice_client, alice.agent, amount="25.00")

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "daily_cap_exceeded"
    assert error["cap"]["remaining"] == {"amount": "20.00", "currency": "USD"}
    approval = ApprovalRequest.objects.get(pk=error["approval_id"])
    assert approval.requested_amount.amount == Decimal("25.00")
    assert Card.objects.filter(agent=alice.agent).count() == before  # nothing issued


def test_once_approved_the_same_request_issues_the_card(
    alice, alice_client, staff_client, starter_policy
):
    starter_policy.daily_cap = Decimal("20.00")
    starter_policy.save()
    approval_id = ask(alice_client, alice.agent, amount="25.00").json()["error"]["approval_id"]
    staff_client.post(f"/api/approvals/{approval_id}/approve", {}, format="json")

    assert ask(alice_client, alice.agent, amount="25.00").status_code == 201


def test_a_ceiling_above_the_per_authorization_cap_is_refused_without_approval(
    alice, alice_client, starter_policy
):
    starter_policy.per_authorization_cap = Decimal("10.00")
    starter_policy.save()
    error = ask(alice_client, alice.agent, amount="10.01").json()["error"]
    assert (error["code"], error["approval_id"]) == ("per_authorization_cap_exceeded", None)


def test_bad_single_use_requests_are_400s(alice, alice_client):
    assert ask(alice_client, alice.agent, seconds=2 * 24 * 3600).status_code == 400
    assert ask(alice_client, alice.agent, amount="0").status_code == 400
    both = ask(alice_client, alice.agent, monthly_cap={"amount": "5.00", "currency": "USD"})
    assert both.status_code == 400
    euros = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {
            "vendor": "openai",
            "max_amount": {"amount": "5", "currency": "EUR"},
            "expires_in_seconds": 600,
        },
        format="json",
    )
    assert euros.status_code == 400
    no_lifetime = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {"vendor": "openai", "max_amount": {"amount": "5", "currency": "USD"}},
        format="json",
    )
    assert "expires_in_seconds" in no_lifetime.json()["error"]["fields"]


def test_a_ceiling_above_the_vendors_month_left_opens_an_approval_for_that_cap(
    alice, alice_client, network, starter_policy
):
    openai = Card.objects.get(agent=alice.agent, vendor__slug="openai", is_ephemeral=False)
    PolicyVendorCap.objects.update_or_create(
        policy=starter_policy, vendor=openai.vendor, defaults={"monthly_cap": Decimal("40.00")}
    )
    assert network.authorize(openai, "30.00", **merchant_of(openai)).json()["decision"] == (
        "approved"
    )

    error = ask(alice_client, alice.agent, amount="10.01").json()["error"]

    assert (error["code"], error["cap"]["scope"]) == ("card_cap_exceeded", "vendor")
    assert error["cap"]["remaining"] == {"amount": "10.00", "currency": "USD"}
    assert ApprovalRequest.objects.get(pk=error["approval_id"]).scope == "vendor"
    assert ask(alice_client, alice.agent, amount="10.00").status_code == 201


def test_a_ceiling_above_the_traces_budget_left_is_declined_for_that_trace(
    alice, alice_client, starter_policy
):
    starter_policy.per_trace_cap = Decimal("12.00")
    starter_policy.save()

    error = ask(alice_client, alice.agent, amount="12.50", trace_id="acme/api#9").json()["error"]

    assert (error["code"], error["cap"]["scope"]) == ("trace_cap_exceeded", "trace")
    assert ApprovalRequest.objects.get(pk=error["approval_id"]).trace_id == "acme/api#9"
    # No trace, none set on the agent: no trace budget to draw on.
    assert ask(alice_client, alice.agent, amount="12.50").status_code == 201


def test_an_unverified_principals_agent_gets_cards_only_up_to_the_unverified_limit(
    alice, alice_client, starter_policy
):
    starter_policy.unverified_charge_limit = Decimal("5.00")
    starter_policy.save()
    alice.agent.principal.email_verified_at = None
    alice.agent.principal.save()

    error = ask(alice_client, alice.agent, amount="5.01").json()["error"]

    assert (error["code"], error["approval_id"]) == ("principal_unverified", None)
    assert ask(alice_client, alice.agent, amount="5.00").status_code == 201
