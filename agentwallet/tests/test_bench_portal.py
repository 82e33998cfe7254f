"""bench/portal.py still runs: its data builder and a page measurement, at a tiny size.

The builder writes its history with COPY and its spend counters in one SQL statement, so
it runs on PostgreSQL only (left out of CI's SQLite pass)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalStatus
from cards.models import Card, CardStatus
from ledger.models import Authorization, LedgerEntry, SpendCounter, SpendRollupMark
from ledger.services import counters_rebuild
from ledger.services.counters import counters_prune
from ledger.services.rollups import spend_rollups_check
from wallets.models import Agent

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # the benchmarks import harness by its bare name
    try:
        spec = importlib.util.spec_from_file_location("bench_portal", BENCH / "portal.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


LEDGER_TABLES = ["ledger_authorization", "ledger_ledgerentry", "ledger_networkevent"]


def _schema() -> set[tuple]:
    """The ledger tables' constraints and indexes, as the catalogue defines them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = ANY(%s::regclass[])",
            [LEDGER_TABLES],
        )
        constraints = set(cursor.fetchall())
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)",
            [LEDGER_TABLES],
        )
        return constraints | set(cursor.fetchall())


@pytest.fixture
def schema_before(requires_postgres: None, db: None) -> set[tuple]:
    return _schema()


@pytest.fixture
def tiny(bench: ModuleType, schema_before: set[tuple]):
    sizes = bench.Sizes(
        agents=5,
        teams=2,
        entries=200,
        traces=5,
        decided_approvals=2,
        pending_approvals=2,
        frozen_cards=2,
        frozen_agents=1,
    )
    now = timezone.now()
    bench.build(sizes, now=now)
    return sizes, now


def _counters() -> set[tuple]:
    return set(SpendCounter.objects.values_list("scope", "grain", "bucket_start", "cents", "holds"))


def test_builder_writes_the_sizes_asked_for(tiny):
    sizes, _ = tiny
    assert Agent.objects.count() == sizes.agents
    assert Card.objects.count() == sizes.agents * sizes.cards_per_agent
    assert LedgerEntry.objects.count() == sizes.entries
    assert Authorization.objects.filter(decision="declined").exists()
    assert Card.objects.filter(status=CardStatus.FROZEN).exists()
    assert ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).exists()
    assert ApprovalRequest.objects.exclude(status=ApprovalStatus.PENDING).exists()


def test_builder_puts_back_every_constraint_and_index_it_loads_without(tiny, schema_before):
    assert len(schema_before) > 20
    assert _schema() == schema_before


def test_builders_counters_are_those_the_rebuild_writes(tiny):
    _, now = tiny
    built = _counters()
    assert built
    counters_rebuild()
    counters_prune(now=now)
    assert _counters() == built


def test_the_rollups_are_folded_but_the_newest_entries(bench, tiny):
    figures = bench.fold_rollups(tail=20)
    mark = SpendRollupMark.objects.get().last_entry_id
    # Up to the 21st newest entry's posting time (a capture and its release share it).
    assert 0 < figures["tail_entries"] <= 20
    assert LedgerEntry.objects.filter(id__gt=mark).count() == figures["tail_entries"]
    assert figures["day_rows"] > 0
    assert figures["trace_rows"] > 0
    assert spend_rollups_check() == []


def test_the_rollups_reads_are_timed_by_the_length_of_their_tail(bench, tiny):
    rows = bench.rollup_tail_reads(tails=(0, 5), loads=2)
    assert [row["tail_entries"] for row in rows] == [0, 5]
    assert all(row["totals"] > 0 and row["traces this month"] > 0 for row in rows)
    assert SpendRollupMark.objects.get().last_entry_id < LedgerEntry.objects.latest("id").pk


def test_a_page_is_measured_signed_in_as_the_lead(bench, tiny):
    client = bench.signed_in_client(bench.LEAD)
    arguments = bench.page_arguments(username=bench.LEAD)
    lead_agent = Agent.objects.get(pk=arguments["agent_id"])
    assert lead_agent.principal.leads.filter(user__username=bench.LEAD).exists()

    figures = bench.measure_page(client, "/ledger/", htmx=True, loads=2, warmup=1)

    assert figures["status"] == 200
    assert figures["latency"]["p95_ms"] > 0
    assert figures["queries"] > 0
    assert figures["slowest_query"]["sql"]


def test_an_unrouted_page_is_missing_not_an_error(bench):
    figures = bench.measure_page(Client(), "/no-such-page/", htmx=False, loads=1, warmup=1)
    assert figures["status"] == "missing"
