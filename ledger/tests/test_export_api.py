"""GET /api/ledger/export: every entry of a filter as CSV or JSON lines, streamed, money as
strings, agents' keys scoped to their own entries, bad input a 400 that says why."""

from __future__ import annotations

import csv
import io
import json
import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from conftest import card_for
from ledger.exports import CSV_COLUMNS, GROUP_FIGURES, ISO_UTC, group_columns
from ledger.models import Authorization, LedgerEntry


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


def _history(seed: int, alice, bob, network) -> None:
    """A random mix of charges (some declined), captures, reversals and refunds over two
    agents, their vendors, a few traces and several days, in two currencies."""
    rng = random.Random(seed)
    cards = [card_for(agent, vendor) for agent in (alice, bob) for vendor in ("openai", "aws")]
    for n in range(rng.randint(12, 20)):
        card = rng.choice(cards)
        when = datetime(2026, 11, 1 + rng.randint(0, 3), rng.randint(0, 23), tzinfo=UTC)
        amount = f"{rng.choice([3, 40, 120, 700])}.{rng.randint(0, 99):02d}"  # 700: declined
        trace = rng.choice(["", "owner/repo#1", "owner/repo#2"])
        with time_machine.travel(when, tick=False):
            body = network.authorize(
                card,
                amount,
                currency=rng.choice(["USD", "EUR"]),
                network_id=f"a{seed}-{n}",
                **({"trace_id": trace} if trace else {}),
            ).json()
        if body["decision"] != "approved":
            continue
        then = rng.choice(["capture", "reverse", "refund", "hold"])
        with time_machine.travel(when + timedelta(hours=2), tick=False):
            if then in ("capture", "refund"):
                assert (
                    network.capture(body["id"], amount, currency=body_currency(body)).status_code
                    == 201
                )
            if then == "reverse":
                assert network.reverse(body["id"]).status_code in (200, 201)
            if then == "refund":
                refund = {
                    "id": f"r{seed}-{n}",
                    "card_id": str(card.pk),
                    "authorization_id": body["id"],
                    "amount": {"amount": "1.00", "currency": body_currency(body)},
                }
                assert network.post("/api/network/refunds", refund).status_code == 201

    # Whatever the draw: one refunded capture and one decline, in the same group.
    with time_machine.travel(datetime(2026, 11, 5, 9, tzinfo=UTC), tick=False):
        card = card_for(bob, "aws")
        network.authorize(card, "5.00", network_id=f"f{seed}", trace_id="owner/repo#2")
        assert network.capture(f"f{seed}", "5.00").status_code == 201
        refund = {
            "id": f"fr{seed}",
            "card_id": str(card.pk),
            "authorization_id": f"f{seed}",
            "amount": {"amount": "2.00", "currency": "USD"},
        }
        assert network.post("/api/network/refunds", refund).status_code == 201
        declined = network.authorize(card, "900.00", trace_id="owner/repo#2").json()
        assert declined["decision"] == "declined"


def body_currency(body) -> str:
    return Authorization.objects.get(network_id=body["id"]).amount.currency.code


def _oracle(group_by: list[str]) -> dict[tuple, dict[str, object]]:
    """The groups as Python computes them from every entry and decline."""

    def key(item, day_at) -> tuple:
        parts = {
            "trace": (item.trace_id or None,),  # unattributed: null
            "vendor": (item.vendor.slug if item.vendor else None,),
            "agent": (str(item.agent_id), item.agent.name),
            "card": (
                str(item.card_id) if item.card_id else None,
                item.card.last4 if item.card else None,
            ),
            "rail": (getattr(item, "rail", "card"),),
            "day": (day_at.astimezone(UTC).date().isoformat(),),
        }
        return tuple(value for name in group_by for value in parts[name])

    groups: dict[tuple, dict[str, object]] = {}

    def group(k: tuple) -> dict[str, object]:
        return groups.setdefault(
            k, {"spent": 0, "captured": 0, "refunded": 0, "declined": 0, "times": []}
        )

    for entry in LedgerEntry.objects.select_related("agent", "card", "vendor"):
        g = group((*key(entry, entry.effective_at), entry.cap_amount.currency.code))
        g["spent"] += entry.cap_cents
        g["captured"] += entry.cap_cents if entry.kind == "capture" else 0
        g["refunded"] -= entry.cap_cents if entry.kind == "refund" else 0
        g["times"].append(entry.effective_at)
    for auth in Authorization.objects.filter(decision="declined").select_related(
        "agent__policy", "card", "vendor"
    ):
        g = group((*key(auth, auth.decided_at), auth.agent.policy.currency))
        g["declined"] += 1
        g["times"].append(auth.decided_at)
    return groups


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("group_by", [["trace", "vendor"], ["agent"], ["card", "day"], ["rail"]])
def test_the_group_sums_equal_the_ledger(
    seed, group_by, alice, bob, network, fx_rates, staff_client
):
    _history(seed, alice, bob, network)
    query = {"format": "jsonl", "group_by": ",".join(group_by)}
    lines = [
        json.loads(line)
        for line in streamed(staff_client.get("/api/ledger/export", query)).decode().splitlines()
    ]
    columns = group_columns(group_by)
    assert all(list(line) == columns for line in lines)
    keys = columns[: -len(GROUP_FIGURES) + 1]  # the group's keys and its cap currency
    got = {tuple(line[c] for c in keys): line for line in lines}
    assert len(got) == len(lines)  # each group once
    expected = _oracle(group_by)
    assert set(got) == set(expected)
    for k, figures in expected.items():
        line = got[k]
        assert Decimal(line["spent"]) == Decimal(figures["spent"]) / 100
        assert Decimal(line["captured"]) == Decimal(figures["captured"]) / 100
        assert Decimal(line["refunded"]) == Decimal(figures["refunded"]) / 100
        assert line["declined_attempts"] == figures["declined"]
        assert line["first_at"] == min(figures["times"]).astimezone(UTC).strftime(ISO_UTC)
        assert line["last_at"] == max(figures["times"]).astimezone(UTC).strftime(ISO_UTC)
    # The CSV holds the same groups.
    query["format"] = "csv"
    rows = list(
        csv.DictReader(
            io.StringIO(streamed(staff_client.get("/api/ledger/export", query)).decode())
        )
    )
    assert len(rows) == len(lines)
    assert [row["spent"] for row in rows] == [line["spent"] for line in lines]


def test_an_agent_groups_only_its_own_spend_and_declines(
    alice, bob, network, fx_rates, alice_client
):
    _history(2, alice, bob, network)
    query = {"format": "jsonl", "group_by": "agent"}
    lines = [
        json.loads(line)
        for line in streamed(alice_client.get("/api/ledger/export", query)).decode().splitlines()
    ]
    assert {line["agent_id"] for line in lines} == {str(alice.agent.pk)}


@pytest.mark.parametrize("group_by", ["", "trace,trace", "merchant", "trace,"])
def test_a_bad_group_by_is_a_400(staff_client, db, group_by):
    response = staff_client.get("/api/ledger/export", {"group_by": group_by})
    assert response.status_code == 400
    assert "group_by" in json.dumps(response.json()["error"])


def test_the_command_writes_what_the_api_streams(spent, staff_client, tmp_path):
    out = io.StringIO()
    call_command("export_ledger", str(tmp_path / "ledger.jsonl"), stdout=out)
    assert f"wrote {spent.count()} entries" in out.getvalue()
    api = streamed(staff_client.get("/api/ledger/export", {"format": "jsonl"}))
    assert (tmp_path / "ledger.jsonl").read_bytes() == api
    call_command(
        "export_ledger",
        str(tmp_path / "by-trace.csv"),
        "--group-by",
        "trace,vendor",
        "--since",
        "2000-01-01T00:00:00Z",
        stdout=out,
    )
    query = {"group_by": "trace,vendor", "since": "2000-01-01T00:00:00Z"}
    assert (tmp_path / "by-trace.csv").read_bytes() == streamed(
        staff_client.get("/api/ledger/export", query)
    )
    assert not list(tmp_path.glob("*.partial"))


def test_the_command_refuses_bad_input_and_writes_nothing(db, tmp_path):
    with pytest.raises(CommandError, match="group_by"):
        call_command("export_ledger", str(tmp_path / "x.csv"), "--group-by", "merchant")
    with pytest.raises(CommandError, match="since"):
        call_command("export_ledger", str(tmp_path / "x.csv"), "--since", "yesterday")
    assert list(tmp_path.iterdir()) == []


def test_the_sql_view_has_the_exports_columns_and_rows(spent, staff_client, requires_postgres):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM ledger_export ORDER BY id")
        columns = [column.name for column in cursor.description]
        rows = cursor.fetchall()
    assert columns == [*CSV_COLUMNS, "agent_id", "card_id"]
    body = streamed(staff_client.get("/api/ledger/export", {"format": "jsonl"})).decode()
    exported = [json.loads(line) for line in body.splitlines()]
    assert len(rows) == len(exported) == spent.count()
    for row, line in zip(rows, exported, strict=True):
        viewed = dict(zip(columns, row, strict=True))
        for column in CSV_COLUMNS:
            value = viewed[column]
            if isinstance(value, datetime):
                value = value.astimezone(UTC).strftime(ISO_UTC)
            assert (None if value is None else str(value)) == line[column], column
        assert viewed["agent_id"] == spent.get(pk=viewed["id"]).agent_id


def test_the_sql_view_is_read_only(spent, requires_postgres):
    for statement in (
        "UPDATE ledger_export SET trace_id = 'x'",
        "DELETE FROM ledger_export",
        "INSERT INTO ledger_export (id) VALUES (1)",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
    assert LedgerEntry.objects.count() == spent.count()


def _copies(template: LedgerEntry, count: int, offset: int) -> None:
    """`count` more entries like `template`, a second apart (written as COPY would)."""
    fields = [
        field.attname
        for field in LedgerEntry._meta.concrete_fields
        if field.attname not in ("id", "network_txn_id")
    ]
    copies = []
    for n in range(offset, offset + count):
        copy = LedgerEntry(**{name: getattr(template, name) for name in fields})
        copy.created_at = copy.effective_at = template.created_at + timedelta(seconds=n + 1)
        copies.append(copy)
    LedgerEntry.objects.bulk_create(copies, batch_size=5000)


def _export_peak(client, export_format: str) -> tuple[int, int]:
    """The body's size, and the most Python held at once while it streamed."""
    response = client.get("/api/ledger/export", {"format": export_format})
    tracemalloc.start()
    try:
        size = sum(len(block) for block in response.streaming_content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size, peak


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_the_export_streams_in_constant_memory(alice, network, staff_client, export_format):
    """Five times the entries, five times the body, and no more memory held at once: the
    export streams blocks (bench/reconcile.py does a million)."""
    body = network.authorize(card_for(alice, "openai"), "1.00").json()
    template = LedgerEntry.objects.get(authorization__network_id=body["id"])
    _copies(template, 5_000, 0)
    small, small_peak = _export_peak(staff_client, export_format)
    _copies(template, 20_000, 5_000)
    large, large_peak = _export_peak(staff_client, export_format)
    assert large > 4.5 * small
    assert large_peak < 1.25 * small_peak + 256 * 1024, (small_peak, large_peak)
