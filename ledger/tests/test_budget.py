from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine
from django.utils import timezone

from ledger.models import LedgerEntry


def entry(provisioned, *, at, cap, kind="hold", trace_id="", card_index=0):
    card = provisioned.cards[card_index].card
    return LedgerEntry.objects.create(
        kind=kind,
        agent=provisioned.agent,
        card=card,
        vendor=card.vendor,
        trace_id=trace_id,
        amount=abs(Decimal(cap)),
        cap_amount=Decimal(cap),
        created_at=at,
    )


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
    assert body["x402"] == {"allowed": True, "per_call_cap": {"amount": "5.00", "currency": "USD"}}


@time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=UTC), tick=False)
def test_budget_sums_the_rolling_day_and_the_month(alice, alice_client):
    now = timezone.now()
    entry(alice, at=now - timedelta(hours=25), cap="100.00")  # outside 24h, inside month
    entry(alice, at=now - timedelta(hours=23), cap="40.25", trace_id="PR-1")
    entry(alice, at=now - timedelta(hours=1), cap="-10.00", kind="release", trace_id="PR-1")
    entry(alice, at=now - timedelta(days=12), cap="999.00")  # last month

    body = alice_client.get(f"/api/agents/{alice.agent.pk}/budget").json()

    assert body["rolling_24h"]["spent"]["amount"] == "30.25"
    assert body["rolling_24h"]["remaining"]["amount"] == "469.75"
    assert body["month"]["spent"]["amount"] == "130.25"
    assert body["month"]["window_start"] == "2026-03-01T00:00:00Z"
    [trace] = body["traces"]
    assert trace == {
        "trace_id": "PR-1",
        "cap": {"amount": "20.00", "currency": "USD"},
        "spent": {"amount": "30.25", "currency": "USD"},
        "remaining": {"amount": "0.00", "currency": "USD"},
    }


def test_trace_context_shows_up_as_an_open_trace(alice, alice_client):
    alice_client.put(f"/api/agents/{alice.agent.pk}/trace", {"trace_id": "PR-77"}, format="json")
    body = alice_client.get(f"/api/agents/{alice.agent.pk}/budget").json()
    assert [trace["trace_id"] for trace in body["traces"]] == ["PR-77"]
