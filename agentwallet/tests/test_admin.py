from __future__ import annotations

import pytest

from cards.models import Card, CardEvent, CardStatus
from wallets.models import ApiKey

ADMIN_PAGES = [
    "/admin/",
    "/admin/wallets/agent/",
    "/admin/wallets/principal/",
    "/admin/wallets/apikey/",
    "/admin/cards/card/",
    "/admin/cards/cardevent/",
    "/admin/policies/policy/",
    "/admin/policies/vendor/",
    "/admin/ledger/ledgerentry/",
    "/admin/ledger/runaway/",
    "/admin/ledger/sprintreport/",
    "/admin/ledger/sprintcalendar/",
]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_pages_render(alice, admin_client, network, path):
    from conftest import card_for

    body = network.authorize(card_for(alice, "aws"), "499.00").json()
    network.authorize(card_for(alice, "aws"), "9.00")  # a daily-cap decline and its request
    network.capture(body["id"], "499.00", id="t")
    assert admin_client.get(path).status_code == 200


def test_admin_detail_pages_render(alice, admin_client):
    assert admin_client.get(f"/admin/wallets/agent/{alice.agent.pk}/change/").status_code == 200
    policy_id = alice.agent.policy_id
    assert admin_client.get(f"/admin/policies/policy/{policy_id}/change/").status_code == 200


def test_admin_freeze_action_goes_through_the_service(alice, admin_client):
    ids = [str(new.card.pk) for new in alice.cards[:2]]
    response = admin_client.post(
        "/admin/cards/card/", {"action": "freeze_selected", "_selected_action": ids}
    )
    assert response.status_code == 302
    assert set(Card.objects.filter(pk__in=ids).values_list("status", flat=True)) == {
        CardStatus.FROZEN
    }
    event = CardEvent.objects.filter(card_id=ids[0], kind="frozen").get()
    assert event.actor == "user:admin"


def test_admin_revoke_action(alice, admin_client):
    response = admin_client.post(
        "/admin/wallets/apikey/",
        {"action": "revoke_selected", "_selected_action": [alice.api_key.pk]},
    )
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=alice.api_key.pk).revoked


def test_ledger_and_card_events_are_read_only_in_admin(alice, admin_client):
    event = CardEvent.objects.filter(card__agent=alice.agent).first()
    page = admin_client.get(f"/admin/cards/cardevent/{event.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert admin_client.get("/admin/ledger/ledgerentry/add/").status_code == 403


def test_the_sprint_calendar_is_one_row_that_refuses_an_unknown_time_zone(admin_client, db):
    from ledger.services.reports import sprint_calendar

    calendar = sprint_calendar()
    url = f"/admin/ledger/sprintcalendar/{calendar.pk}/change/"
    refused = admin_client.post(
        url, {"first_day": "2026-01-05", "length_days": "14", "time_zone": "Mars/Olympus"}
    )
    assert refused.status_code == 200
    assert "Unknown time zone" in refused.content.decode()
    saved = admin_client.post(
        url, {"first_day": "2026-01-12", "length_days": "7", "time_zone": "Europe/Paris"}
    )
    assert saved.status_code == 302
    calendar.refresh_from_db()
    assert (calendar.length_days, calendar.time_zone) == (7, "Europe/Paris")
    assert admin_client.get("/admin/ledger/sprintcalendar/add/").status_code == 403
