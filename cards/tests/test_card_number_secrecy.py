"""The full card number leaves the system once: in the response that issues the card."""

from __future__ import annotations

import logging

from django.db import connection

from cards.models import Card


def test_card_number_never_appears_after_issuance_or_in_logs(staff_client, caplog):
    caplog.set_level(logging.DEBUG)  # includes django.db.backends SQL logging
    created = staff_client.post(
        "/api/agents",
        {
            "name": "secretive",
            "principal_email": "s@example.com",
            "policy": "starter",
        },
        format="json",
    ).json()
    agent_id = created["agent"]["id"]
    numbers = [card["number"] for card in created["cards"]]
    card_ids = [card["card"]["id"] for card in created["cards"]]

    later = [
        staff_client.get("/api/agents"),
        staff_client.get(f"/api/agents/{agent_id}"),
        staff_client.get(f"/api/agents/{agent_id}/cards"),
        staff_client.get(f"/api/agents/{agent_id}/budget"),
        *[staff_client.get(f"/api/agents/{agent_id}/cards/{cid}") for cid in card_ids],
        staff_client.post(f"/api/agents/{agent_id}/freeze", {"reason": "x"}, format="json"),
        staff_client.post(f"/api/agents/{agent_id}/unfreeze", {}, format="json"),
    ]
    assert all(response.status_code == 200 for response in later)
    bodies = "".join(response.content.decode() for response in later)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for number in numbers:
        assert number not in bodies
        assert number not in logged
        assert number[:-4] not in bodies  # not even the number without its last four
    assert '"cvc"' not in bodies


def test_card_rows_hold_no_plaintext_number_and_no_cvc(alice):
    secrets = {new.card.pk: new.secrets for new in alice.cards}
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM cards_card")
        rows = cursor.fetchall()
    assert len(rows) == len(secrets)
    dumped = repr(rows)
    for secret in secrets.values():
        assert secret.number not in dumped
    # The CVC is not a column at all.
    assert "cvc" not in {field.name for field in Card._meta.get_fields()}


def test_admin_shows_only_masked_numbers(alice, admin_client):
    card = alice.cards[0]
    page = admin_client.get(f"/admin/cards/card/{card.card.pk}/change/").content.decode()
    listing = admin_client.get("/admin/cards/card/").content.decode()
    assert card.card.last4 in listing
    assert card.secrets.number not in page
    assert card.secrets.number not in listing
    assert card.card.number_ciphertext not in page
