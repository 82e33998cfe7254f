"""GET /api/ledger/export: every entry of a filter as CSV or JSON lines, streamed, money as
strings, agents' keys scoped to their own entries, bad input a 400 that says why."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pytest

from conftest import card_for
from ledger.exports import CSV_COLUMNS
from ledger.models import LedgerEntry


@pytest.fixture
def spent(alice, bob, network, fx_rates):
    body = network.authorize(card_for(alice, "openai"), "12.50", trace_id="owner/repo#1").json()
    assert network.capture(body["id"], "13.00").status_code == 201
    network.authorize(card_for(alice, "anthropic"), "9.99", currency="EUR")  # converted
    network.authorize(card_for(bob, "aws"), "3.00", trace_id="owner/repo#2")
    return LedgerEntry.objects.order_by("id")


def streamed(response) -> bytes:
    assert response.status_code == 200, response.content
    assert response.streaming
    return b"".join(response.streaming_content)


def test_the_csv_is_every_entry_with_the_documented_columns(spent, staff_client):
    response = staff_client.get("/api/ledger/export")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="ledger.csv"'
    rows = list(csv.DictReader(io.StringIO(streamed(response).decode())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [int(row["id"]) for row in rows] == list(spent.values_list("id", flat=True))
    # The same bytes as ?format=csv, and as the portal's export of the same entries.
    again = streamed(staff_client.get("/api/ledger/export", {"format": "csv"}))
    assert again == streamed(staff_client.get("/api/ledger/export"))


def test_json_lines_carry_the_same_columns_with_money_as_strings(spent, staff_client):
    response = staff_client.get("/api/ledger/export", {"format": "jsonl"})
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="ledger.jsonl"'
    lines = [json.loads(line) for line in streamed(response).decode().splitlines()]
    assert len(lines) == spent.count()
    assert all(list(line) == list(CSV_COLUMNS) for line in lines)
    converted = next(line for line in lines if line["currency"] == "EUR")
    entry = spent.get(pk=int(converted["id"]))
    assert converted["amount"] == "9.99"
    assert converted["cap_currency"] == "USD"
    assert converted["cap_amount"] == str(entry.cap_amount.amount)
    assert Decimal(converted["fx_rate"]) == entry.fx_rate != 1
    assert converted["fx_rate_date"] == entry.authorization.fx_rate_date.isoformat()
    hold = next(line for line in lines if line["kind"] == "hold" and line["vendor"] == "openai")
    assert hold["trace_id"] == "owner/repo#1"
    assert hold["card_last4"] == card_for_last4(spent, hold)
    assert hold["authorization_id"] == entry_authorization(spent, hold)
    assert hold["flag"] is None
    assert hold["network_event_id"] is None
    assert not any(isinstance(value, float) for line in lines for value in line.values())
    # The Accept header chooses the format too.
    by_accept = staff_client.get("/api/ledger/export", headers={"Accept": "application/jsonl"})
    assert streamed(by_accept) == streamed(staff_client.get("/api/ledger/export?format=jsonl"))


def card_for_last4(entries, line) -> str:
    return entries.get(pk=int(line["id"])).card.last4


def entry_authorization(entries, line) -> str:
    return entries.get(pk=int(line["id"])).authorization.network_id


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_the_ledger_filters_narrow_the_export(spent, staff_client, bob, export_format):
    def ids(**query) -> list[int]:
        body = streamed(
            staff_client.get("/api/ledger/export", {"format": export_format, **query})
        ).decode()
        if export_format == "csv":
            return [int(row["id"]) for row in csv.DictReader(io.StringIO(body))]
        return [int(json.loads(line)["id"]) for line in body.splitlines()]

    assert ids(trace_id="owner/repo#1") == list(
        spent.filter(trace_id="owner/repo#1").values_list("id", flat=True)
    )
    assert ids(agent=str(bob.agent.pk)) == list(
        spent.filter(agent=bob.agent).values_list("id", flat=True)
    )
    assert ids(vendor="anthropic", kind="hold") == list(
        spent.filter(vendor__slug="anthropic", kind="hold").values_list("id", flat=True)
    )
    assert ids(rail="usdc") == []
    assert ids(since="2999-01-01T00:00:00Z") == []


def test_an_agent_exports_only_its_own_entries(spent, alice, bob, alice_client):
    mine = list(
        csv.DictReader(io.StringIO(streamed(alice_client.get("/api/ledger/export")).decode()))
    )
    assert {row["agent"] for row in mine} == {alice.agent.name}
    assert len(mine) == spent.filter(agent=alice.agent).count()
    # Asking for another agent's entries exports none of them.
    other = streamed(alice_client.get("/api/ledger/export", {"agent": str(bob.agent.pk)}))
    assert other.decode().splitlines() == [",".join(CSV_COLUMNS)]


def test_without_a_key_nothing_is_exported(spent, client):
    response = client.get("/api/ledger/export")
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"format": "jsonl", "since": "yesterday"}, "since"),
        ({"rail": "wire"}, "rail"),
        ({"agent": "nope"}, "agent"),
    ],
)
def test_bad_input_is_a_400_in_json_that_names_the_field(spent, staff_client, query, field):
    response = staff_client.get("/api/ledger/export", query)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in json.dumps(error)
