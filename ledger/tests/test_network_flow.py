from __future__ import annotations

from conftest import card_for
from ledger.models import Authorization, LedgerEntry


def test_a_charge_is_approved_held_captured(alice, network):
    card = card_for(alice, "openai")
    response = network.authorize(card, "12.50", network_id="auth_1")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["decision"] == "approved"
    assert body["cap_amount"] == {"amount": "12.50", "currency": "USD"}

    captured = network.capture("auth_1", "12.50", id="txn_1")
    assert captured.status_code == 201, captured.content
    kinds = sorted(LedgerEntry.objects.values_list("kind", "cap_cents"))
    assert kinds == [("capture", 1250), ("hold", 1250), ("release", -1250)]
    assert Authorization.objects.get(network_id="auth_1").hold_state == "closed"
