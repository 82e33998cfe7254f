from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from conftest import card_for


def test_budget_of_a_new_agent_spends_nothing(alice, alice_client):
    response = alice_client.get(f"/api/agents/{alice.agent.pk}/budget")
    assert response.status_code == 200
    body = response.json()
    assert body["currency"] == "USD"
    assert body["rolling_24h"]["cap"] == {"amount": "500.00", "currency": "USD"}
    assert body["rolling_24h"]["spent"] == {"amount": "0.00", "currency": "USD"}
    assert body["rolling_24h"]["remaining"] == {"amount": "500.00", "currency": "USD"}
    assert body["month"]["remaining"] == {"amount": "10000.00", "currency": "USD"}
    assert len(body["cards"]) == 6
    openai = next(card for card in body["cards"] if card["vendor"] == "openai")
    assert openai["vendor_cap"]["cap"] == {"amount": "2000.00", "currency": "USD"}
    assert openai["card_cap"]["cap"] is None
    assert body["traces"] == []
    assert body["x402"] == {
        "allowed": True,
        "per_call_cap": {"amount": "5.00", "currency": "USD"},
        "wallet_address": alice.agent.usdc_wallet.address,
        "wallet_status": "active",
        "unsettled": {"amount": "0.00", "currency": "USD"},
        "unsettled_payments": 0,
    }


def test_budget_shows_real_spend_in_every_window(alice, alice_client, network):
    openai = card_for(alice, "openai")
    aws = card_for(alice, "aws")
    start = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    with time_machine.travel(start - timedelta(hours=25), tick=False):
        assert network.authorize(aws, "100.00").json()["decision"] == "approved"
    with time_machine.travel(start - timedelta(hours=23), tick=False):
        body = network.authorize(openai, "15.25", trace_id="PR-1").json()
        assert body["decision"] == "approved"
    with time_machine.travel(start - timedelta(hours=1), tick=False):
        network.reverse(body["id"], "5.00")
    with time_machine.travel(start, tick=False):
        budget = alice_client.get(f"/api/agents/{alice.agent.pk}/budget").json()

    assert budget["rolling_24h"]["spent"]["amount"] == "10.25"
    assert budget["rolling_24h"]["remaining"]["amount"] == "489.75"
    assert budget["month"]["spent"]["amount"] == "110.25"
    assert budget["month"]["window_start"] == "2026-03-01T00:00:00Z"
    by_vendor = {card["vendor"]: card for card in budget["cards"]}
    assert by_vendor["openai"]["vendor_cap"]["spent"]["amount"] == "10.25"
    assert by_vendor["openai"]["vendor_cap"]["remaining"]["amount"] == "1989.75"
    assert by_vendor["aws"]["card_cap"]["spent"]["amount"] == "100.00"
    [trace] = budget["traces"]
    assert trace == {
        "trace_id": "PR-1",
        "cap": {"amount": "20.00", "currency": "USD"},
        "bump": None,
        "spent": {"amount": "10.25", "currency": "USD"},
        "remaining": {"amount": "9.75", "currency": "USD"},
    }


def test_trace_context_shows_up_as_an_open_trace(alice, alice_client):
    alice_client.put(f"/api/agents/{alice.agent.pk}/trace", {"trace_id": "PR-77"}, format="json")
    body = alice_client.get(f"/api/agents/{alice.agent.pk}/budget").json()
    assert [trace["trace_id"] for trace in body["traces"]] == ["PR-77"]
