"""Every network event is applied at most once, by the network's own id: the same id
again with the same path and payload answers the first result and writes nothing; the
same id with another path or payload is a 409."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from django.db import connection

from agentwallet.tests.test_bad_input import row_counts
from conftest import card_for
from ledger.models import Authorization, LedgerEntry, NetworkEvent


@pytest.fixture
def held(alice, network):
    """An approved $10.00 hold on alice's OpenAI card."""
    body = network.authorize(card_for(alice, "openai"), "10.00", network_id="auth-1").json()
    assert body["decision"] == "approved"
    return body


def test_a_retried_reversal_releases_once(held, network):
    first = network.reverse("auth-1", "4.00", id="rev-1")
    assert first.status_code == 201
    before = row_counts()
    again = network.reverse("auth-1", "4.00", id="rev-1")
    assert again.status_code == 200
    assert again.json() == {**first.json(), "replayed": True}
    assert row_counts() == before
    assert Authorization.objects.get(network_id="auth-1").reversed_cents == 400


def test_a_retried_capture_captures_once_and_answers_as_it_did(held, network):
    first = network.capture("auth-1", "6.00", id="cap-1").json()
    assert (first["hold_state"], first["held"]["amount"]) == ("open", "4.00")
    network.reverse("auth-1", id="rev-rest")
    # The hold has moved on (closed), but the replay answers what the first said.
    again = network.capture("auth-1", "6.00", id="cap-1").json()
    assert again == {**first, "replayed": True}
    assert Authorization.objects.get(network_id="auth-1").captured_cents == 600
    assert LedgerEntry.objects.filter(kind="capture").count() == 1


def test_the_same_id_with_another_payload_is_a_conflict(held, network):
    network.capture("auth-1", "6.00", id="cap-1")
    before = row_counts()
    response = network.capture("auth-1", "7.00", id="cap-1")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert row_counts() == before


def test_a_body_sent_to_another_endpoint_is_refused(alice, held, network):
    """The bytes signed for /capture, sent to /reverse or to another authorization."""
    network.authorize(card_for(alice, "openai"), "5.00", network_id="auth-2")
    body = json.dumps({"id": "evt-1", "amount": {"amount": "3.00", "currency": "USD"}}).encode()
    assert network.post("/api/network/authorizations/auth-1/capture", body).status_code == 201
    before = row_counts()
    for path in (
        "/api/network/authorizations/auth-1/reverse",
        "/api/network/authorizations/auth-2/capture",
        "/api/network/authorizations/auth-2/reverse",
    ):
        response = network.post(path, body)
        assert response.status_code == 409, (path, response.content)
    assert row_counts() == before
    assert Authorization.objects.get(network_id="auth-2").captured_cents == 0


def test_the_same_reversal_body_twice_releases_once(held, network):
    """The issue's probe: `{"amount": ...}` sent twice to /reverse released twice."""
    body = json.dumps({"id": "r-1", "amount": {"amount": "2.00", "currency": "USD"}}).encode()
    path = "/api/network/authorizations/auth-1/reverse"
    assert network.post(path, body).status_code == 201
    assert network.post(path, body).status_code == 200
    assert Authorization.objects.get(network_id="auth-1").reversed_cents == 200


def test_postings_need_the_networks_event_id(held, network):
    before = row_counts()
    for path, body in (
        (
            "/api/network/authorizations/auth-1/capture",
            {"amount": {"amount": "1.00", "currency": "USD"}},
        ),
        ("/api/network/authorizations/auth-1/reverse", {}),
    ):
        response = network.post(path, body)
        assert response.status_code == 400
        assert "id" in response.json()["error"]["fields"]
    assert row_counts() == before


def test_event_ids_are_unique_across_authorizations_and_postings(alice, held, network):
    card = card_for(alice, "openai")
    # A posting may not take an authorization's id ...
    response = network.capture("auth-1", "1.00", id="auth-1")
    assert response.status_code == 409
    # ... nor an authorization a posting's.
    network.capture("auth-1", "1.00", id="cap-9")
    before = row_counts()
    response = network.authorize(card, "1.00", network_id="cap-9")
    assert response.status_code == 409
    assert row_counts() == before


def test_a_refund_is_applied_once(alice, held, network):
    network.capture("auth-1", "10.00", id="cap-1")
    card = card_for(alice, "openai")
    refund = {
        "id": "ref-1",
        "card_id": str(card.pk),
        "authorization_id": "auth-1",
        "amount": {"amount": "4.00", "currency": "USD"},
    }
    assert network.post("/api/network/refunds", refund).status_code == 201
    assert network.post("/api/network/refunds", refund).status_code == 200
    changed = {**refund, "amount": {"amount": "5.00", "currency": "USD"}}
    assert network.post("/api/network/refunds", changed).status_code == 409
    # The refund's bytes sent as a capture of a stand-in: another event, refused.
    response = network.post("/api/network/authorizations/auth-1/capture", refund)
    assert response.status_code in (400, 409)
    assert Authorization.objects.get(network_id="auth-1").refunded_cents == 400


def test_an_authorization_replayed_with_another_merchant_is_a_conflict(alice, held, network):
    card = card_for(alice, "openai")
    same = network.authorize(card, "10.00", network_id="auth-1")
    assert same.status_code == 200
    assert same.json()["replayed"]
    other = network.authorize(card, "10.00", network_id="auth-1", merchant_name="OPENAI LLC")
    assert other.status_code == 409


@pytest.mark.postgres
def test_one_event_id_raced_on_two_agents_applies_once(
    transactional_db, django_db_serialized_rollback, provision, requires_postgres, settings
):
    """The same capture id sent at once for two agents' authorizations: their agent
    locks do not serialize them, the event id's unique index does. One applies, the
    other is a conflict (never a 500)."""
    from rest_framework.test import APIClient

    from agentwallet.lib.errors import Conflict
    from conftest import SignedNetwork
    from ledger.services import authorization_capture

    network = SignedNetwork(APIClient(), settings.AGENTWALLET_NETWORK_SECRET)
    for name in ("a", "b"):
        agent = provision(name=f"racer-{name}", email=f"{name}@example.com")
        body = network.authorize(card_for(agent, "openai"), "50.00", network_id=f"auth-{name}")
        assert body.json()["decision"] == "approved"

    for round_number in range(10):
        event_id = f"shared-{round_number}"
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def capture(target: str, event_id: str = event_id, barrier=barrier, results=results):
            barrier.wait()
            try:
                results[target] = authorization_capture(
                    network_id=target,
                    amount=Decimal("1.00"),
                    currency="USD",
                    network_txn_id=event_id,
                )
            except Conflict as exc:
                results[target] = exc
            finally:
                connection.close()

        threads = [threading.Thread(target=capture, args=(t,)) for t in ("auth-a", "auth-b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        kinds = sorted(type(result).__name__ for result in results.values())
        assert kinds == ["Conflict", "PostingOutcome"], kinds
        assert NetworkEvent.objects.filter(event_id=event_id).count() == 1
        assert LedgerEntry.objects.filter(network_txn_id=event_id).count() == 1
