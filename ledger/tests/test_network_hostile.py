"""The card network's endpoint against hostile input: every answer a JSON 4xx (never a
500 or a decline logged as an outage), nothing written."""

from __future__ import annotations

import json
import time

import pytest

from agentwallet.tests.test_bad_input import row_counts
from conftest import card_for


def test_a_non_ascii_signature_is_refused(alice, network):
    body = json.dumps({"id": "x"}).encode()
    for header in (f"t={int(time.time())},v1=" + "é" * 64, "t=\u0661\u0662,v1=ab"):
        response = network.client.post(
            "/api/network/authorizations",
            data=body,
            content_type="application/json",
            HTTP_AGENTWALLET_SIGNATURE=header.encode().decode("latin-1"),
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.parametrize("ahead", [301, 600, 10 * 365 * 24 * 3600])
def test_a_signature_from_the_future_is_refused(alice, network, ahead):
    payload = {
        "id": "future",
        "card_id": str(card_for(alice, "openai").pk),
        "amount": {"amount": "1.00", "currency": "USD"},
        "merchant": {"mcc": "5734"},
    }
    body = json.dumps(payload).encode()
    before = row_counts()
    signature = network.signature(body, timestamp=int(time.time()) + ahead)
    response = network.post("/api/network/authorizations", body, signature=signature)
    assert response.status_code == 401
    assert row_counts() == before


def test_a_signature_a_little_ahead_is_within_the_tolerance(alice, network):
    """Clocks differ: up to the tolerance either way is accepted."""
    card = card_for(alice, "openai")
    body = json.dumps(
        {
            "id": "skewed",
            "card_id": str(card.pk),
            "amount": {"amount": "1.00", "currency": "USD"},
            "merchant": {"mcc": "5734", "name": "OPENAI", "network_id": "SXONGQUGQWWJUTM"},
        }
    ).encode()
    signature = network.signature(body, timestamp=int(time.time()) + 120)
    response = network.post("/api/network/authorizations", body, signature=signature)
    assert response.status_code == 200
    assert response.json()["decision"] == "approved"


def test_a_second_timestamp_cannot_hide_a_future_one(alice, network):
    """stripe checks the first t=; so do we."""
    body = b'{"id": "x"}'
    future = network.signature(body, timestamp=int(time.time()) + 3600)
    header = future.replace(",v1=", f",t={int(time.time())},v1=")
    response = network.post("/api/network/authorizations", body, signature=header)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("card_id", "\x00"),
        ("card_id", "abc\x00def"),
        ("merchant.name", "ACME\x00"),
        ("merchant.network_id", "\x00"),
        ("id", "\ud800"),
        ("trace_id", "PR-1\x00"),
    ],
)
def test_unstorable_characters_are_bad_input_not_an_outage(alice, network, caplog, where, value):
    card = card_for(alice, "openai")
    payload = {
        "id": "nul-1",
        "card_id": str(card.pk),
        "amount": {"amount": "1.00", "currency": "USD"},
        "merchant": {"mcc": "5734", "name": "OPENAI"},
    }
    if "." in where:
        outer, inner = where.split(".")
        payload[outer][inner] = value
    else:
        payload[where] = value
    before = row_counts()
    response = network.post("/api/network/authorizations", json.dumps(payload).encode())
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "parse_error"
    assert row_counts() == before
    assert "database unavailable" not in caplog.text


@pytest.mark.parametrize("amount", ["1_000", "\uff11\uff12", " 12.50 ", "12.501", 12])
def test_network_amounts_are_strict(alice, network, amount):
    before = row_counts()
    response = network.post(
        "/api/network/authorizations",
        {
            "id": "strict-1",
            "card_id": str(card_for(alice, "openai").pk),
            "amount": {"amount": amount, "currency": "USD"},
            "merchant": {"mcc": "5734"},
        },
    )
    assert response.status_code == 400
    assert row_counts() == before


def test_deeply_nested_json_is_refused_on_every_network_endpoint(alice, network):
    nested = ("[" * 1000 + "]" * 1000).encode()
    for path in (
        "/api/network/authorizations",
        "/api/network/authorizations/a1/capture",
        "/api/network/authorizations/a1/reverse",
        "/api/network/refunds",
    ):
        response = network.post(path, nested)
        assert response.status_code == 400, (path, response.content)


def test_oversized_bodies_are_refused_with_json(alice, network):
    big = json.dumps({"id": "x", "pad": "y" * 200_000}).encode()
    response = network.post("/api/network/authorizations", big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
