"""The portal's ledger page and its CSV export: the user's entries only, the API's
filters, totals for the filter, keyset pages, the export streamed."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext

from agentwallet.tests.test_portal import signed_in, user_with
from conftest import card_for
from wallets.models import TeamLead


@pytest.fixture
def entries(alice, bob, network):
    network.authorize(card_for(alice, "openai"), "12.50", trace_id="PR-1")
    network.authorize(card_for(alice, "anthropic"), "2.00")
    network.authorize(card_for(bob, "openai"), "3.00")
    return alice, bob


def test_the_ledger_lists_entries_with_totals_and_filters(entries):
    client = signed_in(user_with("Finance"))
    page = client.get("/ledger/").content.decode()
    assert "17.50 USD</strong> net over 3 entries" in page
    by_trace = client.get("/ledger/?trace_id=PR-1").content.decode()
    assert "12.50 USD</strong> net over 1 entry" in by_trace
    by_vendor = client.get("/ledger/?vendor=anthropic").content.decode()
    assert "2.00 USD</strong> net over 1 entry" in by_vendor
    bad = client.get("/ledger/?since=yesterday").content.decode()
    assert 'role="alert"' in bad
    assert "No entries match." in bad


def test_a_lead_sees_only_their_teams_entries(entries):
    alice, _ = entries
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    assert "14.50 USD</strong> net over 2 entries" in client.get("/ledger/").content.decode()
    exported = b"".join(client.get("/ledger/export.csv").streaming_content).decode()
    assert "bob-agent" not in exported


def test_the_pages_go_back_by_keyset_with_flat_queries(alice, network):
    client = signed_in(user_with("Viewer"))
    card = card_for(alice, "openai")
    for n in range(60):
        network.authorize(card, "0.01", network_id=f"n{n}")
    with CaptureQueriesContext(connection) as first:
        page = client.get("/ledger/").content.decode()
    assert "Older entries" in page
    before = page.split("before=")[1].split('"')[0]
    with CaptureQueriesContext(connection) as second:
        older = client.get(f"/ledger/?before={before}").content.decode()
    assert "Older entries" not in older
    assert "Totals for this filter</a> are on its first page." in older
    # The same, less the first page's totals (the rollups' mark, then one statement).
    assert len(second) == len(first) - 2


def test_the_csv_export_streams_every_entry_of_the_filter(entries):
    client = signed_in(user_with("Finance"))
    response = client.get("/ledger/export.csv?vendor=openai")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 2
    assert {row["agent"] for row in rows} == {"alice-agent", "bob-agent"}
    assert {row["amount"] for row in rows} == {"12.50", "3.00"}
    assert all(row["kind"] == "hold" and row["currency"] == "USD" for row in rows)
    assert {row["trace_id"] for row in rows} == {"PR-1", ""}


def test_anonymous_and_roleless_users_are_kept_out(entries, client):
    assert client.get("/ledger/")["Location"].startswith("/accounts/login/")
    assert client.get("/ledger/export.csv")["Location"].startswith("/accounts/login/")
    assert signed_in(user_with(None)).get("/ledger/export.csv").status_code == 403


def test_the_date_inputs_filter(entries):
    client = signed_in(user_with("Finance"))
    today = client.get("/ledger/?since=2000-01-01&until=2999-01-01").content.decode()
    assert "17.50 USD</strong> net over 3 entries" in today
    none = client.get("/ledger/?since=2999-01-01").content.decode()
    assert "No entries match." in none
    assert 'role="alert"' not in none


def test_the_card_and_rail_filters(entries):
    alice, _ = entries
    client = signed_in(user_with("Finance"))
    page = client.get("/ledger/").content.decode()
    assert '<label for="f-card">Card id</label>' in page
    assert '<option value="usdc" ' in page
    by_card = client.get(f"/ledger/?card={card_for(alice, 'anthropic').pk}").content.decode()
    assert "2.00 USD</strong> net over 1 entry" in by_card
    assert (
        "17.50 USD</strong> net over 3 entries" in client.get("/ledger/?rail=card").content.decode()
    )
    assert "No entries match." in client.get("/ledger/?rail=usdc").content.decode()
