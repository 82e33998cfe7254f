"""Every network endpoint answers within AGENTWALLET_DECISION_DEADLINE_MS, whatever the
database does: hangs (a proxy that stops forwarding), holds a lock too long, or is
gone. The worker stays usable, and the request after the database is back is decided
normally."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from agentwallet.db.postgresql.base import connector
from conftest import card_for
from ledger.models import Authorization
from ledger.tests.tcp_proxy import HangingProxy

pytestmark = pytest.mark.postgres

DEADLINE_MS = 600  # short, so the suite waits little; the default is 1500
SLACK_S = 0.25  # rendering and the test client, beyond the deadline


@pytest.fixture
def through_proxy(transactional_db, django_db_serialized_rollback, requires_postgres, settings):
    """The app's connection goes through a proxy the test can make hang."""
    settings.AGENTWALLET_DECISION_DEADLINE_MS = DEADLINE_MS
    params = connection.settings_dict
    proxy = HangingProxy((params["HOST"] or "127.0.0.1", int(params["PORT"] or 5432)))
    original = params["HOST"], params["PORT"]
    connection.close()
    params["HOST"], params["PORT"] = "127.0.0.1", str(proxy.port)
    yield proxy
    proxy.resume()
    # Connects given up on finish now, through the proxy, and are closed: wait for them
    # (the pool runs its tasks in order), so no session outlives the test.
    for waited in [connector.submit(lambda: None) for _ in range(2)]:
        waited.result(timeout=10)
    connection.close()
    params["HOST"], params["PORT"] = original
    proxy.close()


def timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_hung_database_gives_a_decline_within_the_deadline(through_proxy, provision, network):
    card = card_for(provision(), "openai")
    assert network.authorize(card, "1.00").json()["decision"] == "approved"

    through_proxy.hang()
    # On the open connection (cut off by the watchdog), then on a new one (its connect
    # bounded by what is left), then again.
    for attempt in ("h0", "h1", "h2"):
        response, took = timed(lambda a=attempt: network.authorize(card, "1.00", network_id=a))
        assert response.status_code == 200
        body = response.json()
        assert (body["decision"], body["reason"]) == ("declined", "system_unavailable")
        assert body["decision_id"] is None
        assert took < DEADLINE_MS / 1000 + SLACK_S, f"attempt {attempt} took {took:.3f}s"
    # A posting cannot be declined: it answers 503 in time, and the network retries.
    response, took = timed(lambda: network.capture("h0", "1.00"))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "system_unavailable"
    assert took < DEADLINE_MS / 1000 + SLACK_S

    through_proxy.resume()
    body = network.authorize(card, "1.00", network_id="after").json()
    assert body["decision"] == "approved"
    # Nothing of the cut-off attempts was written.
    assert not Authorization.objects.filter(network_id__in=["h0", "h1", "h2"]).exists()


def test_stripe_is_answered_with_a_decline_within_the_deadline(
    through_proxy, fake_stripe, provision, client
):
    """Stripe's real-time authorization fails closed too: a hung database gives a 200
    decline in time (Stripe would wait 2 s, then apply its own default), and an event
    that could not be applied answers 503 in time, so Stripe sends it again."""
    from cards.tests.fake_stripe import deliver

    card = card_for(provision(), "openai")
    purchase = fake_stripe.authorize(card.issuer_card_id, 100, mcc=card.vendor.mccs[0])
    capture = fake_stripe.capture(None, 100, card_id=card.issuer_card_id)
    through_proxy.hang()
    response, took = timed(lambda: deliver(client, purchase))
    assert response.status_code == 200
    assert response.json()["approved"] is False
    assert response.json()["metadata"]["agentwallet_reason"] == "system_unavailable"
    assert took < DEADLINE_MS / 1000 + SLACK_S, f"took {took:.3f}s"
    response, took = timed(lambda: deliver(client, capture))
    assert response.status_code == 503
    assert took < DEADLINE_MS / 1000 + SLACK_S, f"took {took:.3f}s"
    through_proxy.resume()
    assert deliver(client, capture).status_code == 200
    assert not Authorization.objects.filter(network_id=purchase["data"]["object"]["id"]).exists()


def test_a_lock_held_past_the_deadline_gives_a_decline_in_time(through_proxy, provision, network):
    provisioned = provision()
    card = card_for(provisioned, "openai")
    params = settings.DATABASES["default"]
    holder = psycopg.connect(
        host="127.0.0.1",
        port=through_proxy.upstream[1],
        user=params["USER"],
        dbname=connection.settings_dict["NAME"],
    )
    try:
        holder.execute(
            "SELECT 1 FROM wallets_agent WHERE id = %s FOR UPDATE", [provisioned.agent.pk]
        )
        response, took = timed(lambda: network.authorize(card, "1.00", network_id="locked"))
        assert response.json()["reason"] == "system_unavailable"
        assert took < DEADLINE_MS / 1000 + SLACK_S
        # The server cancelled the wait (lock_timeout), so the connection is still good:
        # the next request needs no new one.
        assert connection.connection is not None
    finally:
        holder.rollback()
        holder.close()
    assert network.authorize(card, "1.00", network_id="unlocked").json()["decision"] == "approved"


def test_no_deadline_outside_network_requests(through_proxy, provision, alice_client):
    """Agents' and staff's requests are not cut off (their own timeouts are gunicorn's)."""
    provisioned = provision()
    response = alice_client.get(f"/api/agents/{provisioned.agent.pk}")
    assert response.status_code in (200, 404)
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"
