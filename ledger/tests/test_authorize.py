"""The network endpoint end to end: every rule through the URL, idempotency, signatures."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import OperationalError
from django.utils import timezone

from approvals.models import ApprovalRequest
from cards.models import Card, CardStatus
from cards.services import card_freeze
from conftest import card_for, merchant_of
from ledger.models import Authorization, LedgerEntry
from policies.models import Policy
from wallets.actors import Actor
from wallets.models import Agent, AgentStatus

SYSTEM = Actor.system("test")


def decide(network, card, amount="10.00", **kwargs):
    response = network.authorize(card, amount, **kwargs)
    assert response.status_code == 200, response.content
    return response.json()


def test_approval_holds_the_amount_and_answers_in_the_designed_shape(alice, network):
    body = decide(network, card_for(alice, "openai"), "12.50", network_id="auth_shape")
    assert body["decision"] == "approved"
    assert body["reason"] == ""
    assert body["id"] == "auth_shape"
    assert body["cap_amount"] == {"amount": "12.50", "currency": "USD"}
    assert body["fx_rate"] == "1.00000000"
    assert body["approval_id"] is None
    hold = LedgerEntry.objects.get()
    assert (hold.kind, hold.cap_cents, hold.card_id) == ("hold", 1250, card_for(alice, "openai").pk)


def test_unknown_card_is_declined_and_recorded(network, db):
    body = decide(network, "7b1e8a4e-0000-4000-8000-000000000000", mcc="5734")
    assert body["reason"] == "card_not_found"
    assert Authorization.objects.get().reason == "card_not_found"


def test_garbage_card_id_is_declined_not_an_error(network, db):
    assert decide(network, "not-a-uuid", mcc="5734")["reason"] == "card_not_found"


def test_closed_card(alice, network):
    card = card_for(alice, "openai")
    Card.objects.filter(pk=card.pk).update(status=CardStatus.CLOSED)
    assert decide(network, card)["reason"] == "card_closed"


def test_expired_ephemeral_card(alice, network, alice_client):
    new = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {"vendor": "replicate", "trace_id": "PR-9", "expires_in_seconds": 60},
        format="json",
    )
    card = Card.objects.get(pk=new.json()["card"]["id"])
    assert decide(network, card)["decision"] == "approved"
    Card.objects.filter(pk=card.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert decide(network, card)["reason"] == "card_expired"


def test_frozen_card_declines_and_the_attempt_is_recorded(alice, network):
    card = card_for(alice, "openai")
    card_freeze(card=card, actor=SYSTEM, reason="test")
    assert decide(network, card)["reason"] == "card_frozen"
    assert Authorization.objects.filter(card=card, reason="card_frozen").count() == 1
    assert LedgerEntry.objects.count() == 0


def test_suspended_agent(alice, network):
    Agent.objects.filter(pk=alice.agent.pk).update(status=AgentStatus.SUSPENDED)
    assert decide(network, card_for(alice, "openai"))["reason"] == "agent_suspended"


def test_mcc_outside_the_vendor_lock(alice, network):
    assert decide(network, card_for(alice, "openai"), mcc="5812")["reason"] == "mcc_not_allowed"


def test_merchant_id_lock(alice, network):
    card = card_for(alice, "openai")
    Card.objects.filter(pk=card.pk).update(allowed_merchant_ids=["SXONGQUGQWWJUTM"])
    assert decide(network, card, merchant_network_id="OTHER")["reason"] == "merchant_not_allowed"
    assert decide(network, card, merchant_network_id="SXONGQUGQWWJUTM")["decision"] == "approved"


def test_currency_without_a_rate(alice, network):
    assert decide(network, card_for(alice, "aws"), "10.00", currency="EUR")["reason"] == (
        "currency_not_supported"
    )


def test_per_authorization_cap(alice, network):
    Policy.objects.filter(slug="starter").update(per_authorization_cap=Decimal("50"))
    body = decide(network, card_for(alice, "aws"), "50.01")
    assert body["reason"] == "per_authorization_cap_exceeded"
    assert body["cap"]["scope"] == "per_authorization"
    assert decide(network, card_for(alice, "aws"), "50.00")["decision"] == "approved"


def test_velocity_stops_a_looping_agent(alice, network):
    Policy.objects.filter(slug="starter").update(velocity_per_hour=3)
    card = card_for(alice, "openai")
    results = [decide(network, card, "0.10")["reason"] for _ in range(5)]
    assert results == ["", "", "", "velocity_exceeded", "velocity_exceeded"]


def test_card_cap(alice, network, alice_client):
    new = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {"vendor": "hetzner", "monthly_cap": {"amount": "30.00", "currency": "USD"}},
        format="json",
    )
    card = Card.objects.get(pk=new.json()["card"]["id"])
    assert decide(network, card, "20.00")["decision"] == "approved"
    body = decide(network, card, "10.01")
    assert body["reason"] == "card_cap_exceeded"
    assert body["cap"] == {
        "scope": "card",
        "limit": {"amount": "30.00", "currency": "USD"},
        "remaining": {"amount": "10.00", "currency": "USD"},
    }


def test_vendor_monthly_cap(alice, network):
    card = card_for(alice, "openai")  # starter: OpenAI $2,000 a month
    Policy.objects.filter(slug="starter").update(daily_cap=Decimal("5000"))
    assert decide(network, card, "1999.99")["decision"] == "approved"
    body = decide(network, card, "0.02")
    assert body["reason"] == "card_cap_exceeded"
    assert body["cap"]["scope"] == "vendor"
    assert body["cap"]["remaining"]["amount"] == "0.01"


def test_daily_cap_declines_and_raises_one_approval_request(alice, network):
    card = card_for(alice, "aws")
    assert decide(network, card, "499.00")["decision"] == "approved"
    first = decide(network, card, "5.00")
    second = decide(network, card, "7.00")
    assert first["reason"] == second["reason"] == "daily_cap_exceeded"
    assert first["cap"]["remaining"] == {"amount": "1.00", "currency": "USD"}
    assert first["approval_id"] is not None
    assert second["approval_id"] == first["approval_id"]
    request = ApprovalRequest.objects.get()
    assert (request.scope, request.status, request.declines_attached) == ("daily", "pending", 2)
    assert request.requested_amount.amount == Decimal("5.00")
    assert decide(network, card, "1.00")["decision"] == "approved"  # the last dollar fits


@time_machine.travel("2026-06-15 12:00+00:00", tick=False)
def test_monthly_cap(alice, network):
    from ledger.services import AuthorizationRequest, authorization_decide

    Policy.objects.filter(slug="starter").update(monthly_cap=Decimal("600"))
    card = card_for(alice, "aws")
    authorization_decide(
        request=AuthorizationRequest(
            network_id="old",
            card_id=str(card.pk),
            amount=Decimal("450"),
            currency="USD",
            merchant_mcc=card.allowed_mccs[0],
            **merchant_of(card),
        ),
        now=timezone.now() - timedelta(days=3),
    )
    body = decide(network, card, "150.01")
    assert body["reason"] == "monthly_cap_exceeded"
    assert body["cap"]["remaining"]["amount"] == "150.00"
    assert decide(network, card, "150.00")["decision"] == "approved"


def test_trace_cap_applies_across_agents_and_vendors(alice, bob, network):
    assert (
        decide(network, card_for(alice, "openai"), "12.00", trace_id="PR-4823")["decision"]
        == "approved"
    )
    assert (
        decide(network, card_for(bob, "github"), "8.00", trace_id="PR-4823")["decision"]
        == "approved"
    )
    body = decide(network, card_for(bob, "vercel"), "0.01", trace_id="PR-4823")
    assert body["reason"] == "trace_cap_exceeded"
    assert body["cap"]["scope"] == "trace"
    assert ApprovalRequest.objects.get().scope_key == "trace:PR-4823"


def test_trace_attribution_order(alice, network, alice_client):
    card = card_for(alice, "openai")
    assert decide(network, card, "1.00")["trace_id"] == ""
    alice_client.put(f"/api/agents/{alice.agent.pk}/trace", {"trace_id": "CTX-1"}, format="json")
    assert decide(network, card, "1.00")["trace_id"] == "CTX-1"
    bound = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {"vendor": "openai", "trace_id": "PR-BOUND"},
        format="json",
    ).json()["card"]["id"]
    assert decide(network, Card.objects.get(pk=bound), "1.00")["trace_id"] == "PR-BOUND"
    assert (
        decide(network, Card.objects.get(pk=bound), "1.00", trace_id="REQ-1")["trace_id"] == "REQ-1"
    )


def test_single_use_card_closes_after_its_first_approval(alice, network, alice_client):
    card_id = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {"vendor": "modal", "trace_id": "PR-1", "single_use": True},
        format="json",
    ).json()["card"]["id"]
    card = Card.objects.get(pk=card_id)
    assert decide(network, card, "1.00")["decision"] == "approved"
    assert decide(network, card, "1.00")["reason"] == "card_closed"


def test_single_use_card_is_closed_at_the_issuer_once_the_decision_commits(
    alice, network, alice_client, monkeypatch, django_capture_on_commit_callbacks
):
    from cards.issuers.sandbox import SandboxIssuer
    from cards.models import CardEvent

    closed: list[str] = []
    monkeypatch.setattr(
        SandboxIssuer, "close_card", lambda self, *, issuer_card_id: closed.append(issuer_card_id)
    )
    card_id = alice_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {"vendor": "modal", "trace_id": "PR-1", "single_use": True},
        format="json",
    ).json()["card"]["id"]
    card = Card.objects.get(pk=card_id)
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        assert decide(network, card, "1.00")["decision"] == "approved"
    assert closed == []  # no call to the issuer while the decision holds the agent's lock
    assert Card.objects.get(pk=card_id).status == CardStatus.CLOSED  # but closed already
    for callback in after_commit:
        callback()
    assert closed == [card.issuer_card_id]
    event = CardEvent.objects.get(card=card, kind="closed")
    assert event.actor == "system:single-use"
    assert event.reason.startswith("used by auth_")


def test_the_network_endpoint_answers_wrong_methods_and_media_types_in_the_error_shape(network, db):
    response = network.client.get("/api/network/authorizations")
    assert response.status_code == 401  # unsigned: refused before anything else
    assert response["WWW-Authenticate"] == "AgentWallet-Signature"
    body = b"id=x"
    response = network.client.post(
        "/api/network/authorizations",
        data=body,
        content_type="application/x-www-form-urlencoded",
        HTTP_AGENTWALLET_SIGNATURE=network.signature(body),
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert _count() == (0, 0)


def test_replaying_an_id_returns_the_first_decision_and_writes_nothing(alice, network):
    card = card_for(alice, "openai")
    first = decide(network, card, "3.00", network_id="auth_same")
    counts = (Authorization.objects.count(), LedgerEntry.objects.count())
    again = decide(network, card, "3.00", network_id="auth_same")
    assert again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    assert (Authorization.objects.count(), LedgerEntry.objects.count()) == counts


@pytest.mark.parametrize(
    ("amount", "currency", "other_card"),
    [("3.01", "USD", False), ("3.00", "EUR", False), ("3.00", "USD", True)],
)
def test_same_id_with_another_amount_or_card_is_409(alice, network, amount, currency, other_card):
    card = card_for(alice, "openai")
    decide(network, card, "3.00", network_id="auth_dup")
    target = card_for(alice, "github") if other_card else card
    response = network.authorize(target, amount, currency, network_id="auth_dup")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert Authorization.objects.count() == 1


def test_database_unreachable_is_a_decline(alice, network, monkeypatch):
    from ledger import services

    def unreachable(**kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(services, "authorization_decide", unreachable)
    body = decide(network, card_for(alice, "openai"))
    assert body["decision"] == "declined"
    assert body["reason"] == "system_unavailable"


# --- Signatures ----------------------------------------------------------------------


def _count():
    return Authorization.objects.count(), LedgerEntry.objects.count()


@pytest.mark.parametrize(
    "make_header",
    [
        lambda net, body: None,
        lambda net, body: "",
        lambda net, body: "garbage",
        lambda net, body: net.signature(body, secret="wrong-secret"),
        lambda net, body: net.signature(body, timestamp=int(timezone.now().timestamp()) - 301),
        lambda net, body: net.signature(body + b" "),
        lambda net, body: net.signature(body).replace("v1=", "v0="),
    ],
)
def test_unsigned_forged_or_stale_requests_are_refused(alice, network, make_header):
    import json

    payload = {
        "id": "auth_x",
        "card_id": str(card_for(alice, "openai").pk),
        "amount": {"amount": "1.00", "currency": "USD"},
        "merchant": {"mcc": "5734"},
    }
    body = json.dumps(payload).encode()
    header = make_header(network, body)
    kwargs = {} if header is None else {"HTTP_AGENTWALLET_SIGNATURE": header}
    response = network.client.post(
        "/api/network/authorizations", data=body, content_type="application/json", **kwargs
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert _count() == (0, 0)


def test_staff_keys_cannot_call_the_network_endpoint(alice, staff_client):
    response = staff_client.post("/api/network/authorizations", {"id": "x"}, format="json")
    assert response.status_code == 401
    assert _count() == (0, 0)


NETWORK_BAD_BODIES = [
    {},
    {"id": "a", "card_id": "c", "amount": {"amount": "1", "currency": "USD"}},  # no merchant
    {
        "id": "a b",
        "card_id": "c",
        "amount": {"amount": "1", "currency": "USD"},
        "merchant": {"mcc": "5734"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "-1", "currency": "USD"},
        "merchant": {"mcc": "5734"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "0", "currency": "USD"},
        "merchant": {"mcc": "5734"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "1" * 30, "currency": "USD"},
        "merchant": {"mcc": "5734"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "1", "currency": "ZZZ"},
        "merchant": {"mcc": "5734"},
    },
    {"id": "a", "card_id": "c", "amount": 1, "merchant": {"mcc": "5734"}},
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "1", "currency": "USD"},
        "merchant": {"mcc": "57"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "1", "currency": "USD"},
        "merchant": {"mcc": "5734", "country": "usa"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "1", "currency": "USD"},
        "merchant": {"mcc": "5734"},
        "trace_id": "has space",
    },
    {
        "id": 5,
        "card_id": "c",
        "amount": {"amount": "1", "currency": "USD"},
        "merchant": {"mcc": "5734"},
    },
    [1, 2],
    {
        "id": "a",
        "card_id": "",
        "amount": {"amount": "1", "currency": "USD"},
        "merchant": {"mcc": "5734"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "1", "currency": "USD"},
        "merchant": {"mcc": "5734", "name": None},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "1", "currency": "USD", "extra": 1},
        "merchant": {"mcc": "5734"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": "NaN", "currency": "USD"},
        "merchant": {"mcc": "5734"},
    },
    {
        "id": "a",
        "card_id": "c",
        "amount": {"amount": 1.005, "currency": "USD"},
        "merchant": {"mcc": "5734"},
    },
]


@pytest.mark.parametrize("payload", NETWORK_BAD_BODIES)
def test_malformed_network_requests_are_4xx_and_write_nothing(network, payload, db):
    response = network.post("/api/network/authorizations", payload)
    assert 400 <= response.status_code < 500, response.content
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert _count() == (0, 0)


def test_malformed_json_with_a_valid_signature_is_400(network, db):
    response = network.post("/api/network/authorizations", b'{"id": ')
    assert response.status_code == 400
    assert _count() == (0, 0)


def test_oversized_network_body_is_413(network, db):
    response = network.post("/api/network/authorizations", b"{" + b" " * 100_000 + b"}")
    assert response.status_code == 413
