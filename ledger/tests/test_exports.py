"""The CSV export: PostgreSQL's COPY and Python's csv writer give the same bytes, for
any filter, in blocks."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.db.models import F

from conftest import card_for
from ledger import exports
from ledger.exports import CSV_COLUMNS, ledger_csv
from ledger.filters import LedgerEntryFilter
from ledger.models import LedgerEntry


@pytest.fixture
def entries(alice, bob, network, fx_rates):
    card = card_for(alice, "openai")
    network.authorize(card, "12.50", trace_id="owner/repo#1", network_id="auth_export_1")
    assert network.capture("auth_export_1", "13.00").status_code == 201
    network.authorize(card_for(alice, "anthropic"), "9.99", currency="EUR")  # converted
    network.authorize(card_for(bob, "aws"), "3.00")
    network.authorize(card_for(bob, "aws"), "900.00")  # declined: no entry
    return LedgerEntry.objects.all()


def named(queryset):
    return queryset.order_by("id").values(
        **{f"c_{column}": F(path) for column, path in CSV_COLUMNS.items()}
    )


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"vendor": "openai"},
        {"trace_id": "owner/repo#1"},
        {"kind": "capture"},
        {"since": "2999-01-01"},
    ],
)
def test_copy_and_the_csv_writer_give_the_same_bytes(entries, requires_postgres, query):
    filtered = LedgerEntryFilter(query, queryset=entries).qs
    copied = b"".join(exports._copied(named(filtered)))
    written = b"".join(exports._written(named(filtered)))
    assert copied == written
    rows = list(csv.DictReader(io.StringIO(copied.decode())))
    assert len(rows) == filtered.count()


def test_the_csv_has_the_documented_columns_and_values(entries):
    rows = list(csv.DictReader(io.StringIO(b"".join(ledger_csv(entries)).decode())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == entries.count()
    hold = next(row for row in rows if row["kind"] == "hold" and row["vendor"] == "openai")
    assert hold["agent"] == "alice-agent"
    assert hold["trace_id"] == "owner/repo#1"
    assert hold["amount"] == "12.50"
    assert hold["currency"] == "USD"
    assert hold["created_at"].endswith("+00:00")
    assert len(hold["created_at"]) == len("2026-12-01T16:09:00.123456+00:00")
    assert hold["authorization_id"]
    assert [int(row["id"]) for row in rows] == sorted(int(row["id"]) for row in rows)


def test_it_streams_in_blocks(entries, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_BYTES", 10)
    blocks = list(ledger_csv(entries))
    assert len(blocks) > 2
    assert all(isinstance(block, bytes) for block in blocks)


@pytest.mark.parametrize("query", [{}, {"vendor": "openai"}, {"since": "2999-01-01"}])
def test_the_servers_json_lines_are_the_same_objects_as_pythons(entries, requires_postgres, query):
    filtered = LedgerEntryFilter(query, queryset=entries).qs
    streamed = b"".join(exports._jsonl_streamed(named(filtered))).decode().splitlines()
    written = [
        json.dumps({column: exports._json(row[f"c_{column}"]) for column in CSV_COLUMNS})
        for row in named(filtered)
    ]
    assert [json.loads(line) for line in streamed] == [json.loads(line) for line in written]
    assert all(list(json.loads(line)) == list(CSV_COLUMNS) for line in streamed)
    assert len(streamed) == filtered.count()
