"""The spend rollups (ledger.services.rollups): folded or not, every read gives what
grouping the ledger itself gives, for every team, whenever the fold last ran."""

from __future__ import annotations

import threading
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from agentwallet.tests.test_portal import signed_in, user_with
from conftest import card_for, merchant_of
from ledger.models import (
    DaySpend,
    LedgerEntry,
    SpendRollupMark,
    TraceAgentMonthSpend,
    TraceMonthSpend,
)
from ledger.selectors import (
    day_vendor_spend_read,
    spend_totals_read,
    trace_month_spend_read,
    trace_month_spenders_read,
)
from ledger.services import (
    AuthorizationRequest,
    authorization_capture,
    authorization_decide,
    authorization_reverse,
    refund_record,
    rollups,
)
from ledger.services.rollups import (
    spend_rollups_advance,
    spend_rollups_check,
    spend_rollups_rebuild,
)
from policies.models import Vendor
from policies.services import policy_create

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _decide(card, amount: str, at: datetime, currency: str = "USD", trace: str = "") -> str:
    with time_machine.travel(at, tick=False):
        outcome = authorization_decide(
            request=AuthorizationRequest(
                network_id=f"auth_{uuid.uuid4().hex[:12]}",
                card_id=str(card.pk),
                amount=Decimal(amount),
                currency=currency,
                merchant_mcc=card.allowed_mccs[0],
                **merchant_of(card),
                trace_id=trace,
            )
        )
    assert outcome.authorization.decision == "approved", outcome.authorization.reason
    return outcome.authorization.network_id


@pytest.fixture
def history(alice, bob, provision, fx_rates):
    """Three teams over two months: alice's (alice and dave), bob's, and carol's, whose
    policy caps in euros. Holds, captures (one days after its purchase), a reversal, a
    refund, charges in another currency than the cap's, entries with and without a
    trace, and the last ones posted seconds before NOW."""
    vendors = list(Vendor.objects.filter(slug__in=["openai", "aws"]))
    euros = policy_create(
        slug="eu",
        name="EU",
        currency="EUR",
        daily_cap=Decimal("900"),
        monthly_cap=Decimal("5000"),
        per_trace_cap=Decimal("50"),
        default_vendors=vendors,
    )
    carol = provision(name="carol-agent", email="carol@example.com", policy=euros)
    dave = provision(name="dave-agent", email="alice@example.com")
    late = _decide(
        card_for(alice, "openai"), "12.50", datetime(2026, 11, 29, 10, tzinfo=UTC), trace="PR-1"
    )
    _decide(
        card_for(alice, "anthropic"),
        "2.00",
        datetime(2026, 11, 30, 23, 59, tzinfo=UTC),
        trace="PR-1",
    )
    early = _decide(
        card_for(bob, "github"), "4.00", datetime(2026, 11, 30, 8, tzinfo=UTC), trace="PR-BOB"
    )
    with time_machine.travel(datetime(2026, 11, 30, 9, tzinfo=UTC), tick=False):
        authorization_capture(network_id=early, amount=Decimal("4.00"), currency="USD")
    _decide(card_for(carol, "openai"), "30.00", datetime(2026, 12, 1, 9, tzinfo=UTC), trace="PR-1")
    _decide(
        card_for(carol, "aws"), "20.00", datetime(2026, 12, 1, 9, 5, tzinfo=UTC), currency="USD"
    )
    reversed_ = _decide(card_for(dave, "aws"), "40.00", datetime(2026, 12, 1, 10, tzinfo=UTC))
    with time_machine.travel(datetime(2026, 12, 1, 10, 30, tzinfo=UTC), tick=False):
        authorization_reverse(network_id=reversed_)
    with time_machine.travel(datetime(2026, 12, 1, 11, tzinfo=UTC), tick=False):
        authorization_capture(network_id=late, amount=Decimal("12.50"), currency="USD")
        refund_record(
            card_id=str(card_for(alice, "openai").pk),
            amount=Decimal("2.50"),
            currency="USD",
            network_txn_id="ref_1",
            authorization_network_id=late,
        )
    _decide(card_for(dave, "github"), "3.00", NOW - timedelta(seconds=20), trace="PR-2")
    return {"alice": alice, "bob": bob, "carol": carol, "dave": dave}


# What the reads must give, grouped in Python from every entry.


def _entries(principal_ids):
    entries = LedgerEntry.objects.select_related("agent", "vendor")
    return [e for e in entries if principal_ids is None or e.agent.principal_id in principal_ids]


def ledger_days(principal_ids, first_day: date, last_day: date):
    cells = defaultdict(int)
    for entry in _entries(principal_ids):
        day = entry.effective_at.astimezone(UTC).date()
        if first_day <= day <= last_day:
            vendor = entry.vendor.name if entry.vendor else None
            cells[(entry.cap_amount_currency, day, vendor)] += entry.cap_cents
    return dict(cells)


def ledger_totals(principal_ids):
    totals = defaultdict(lambda: [0, 0])
    for entry in _entries(principal_ids):
        totals[entry.cap_amount_currency][0] += entry.cap_cents
        totals[entry.cap_amount_currency][1] += 1
    return {currency: tuple(pair) for currency, pair in totals.items()}


def ledger_traces(principal_ids, now: datetime, prefix: str = ""):
    cells = {}
    for entry in _entries(principal_ids):
        at = entry.effective_at.astimezone(UTC)
        if not entry.trace_id or (at.year, at.month) != (now.year, now.month):
            continue
        if not entry.trace_id.startswith(prefix):
            continue
        key = (entry.trace_id, entry.cap_amount_currency)
        cells[key] = cells.get(key, 0) + entry.cap_cents
    return sorted(
        ((trace, currency, cents) for (trace, currency), cents in cells.items()),
        key=lambda row: (-row[2], row[0], row[1]),
    )


def ledger_spenders(principal_ids, now: datetime, trace_ids):
    last = {}
    for entry in _entries(principal_ids):
        at = entry.effective_at.astimezone(UTC)
        if entry.trace_id in trace_ids and (at.year, at.month) == (now.year, now.month):
            vendor = entry.vendor.name if entry.vendor else None
            key = (entry.trace_id, entry.cap_amount_currency, entry.agent_id, vendor)
            last[key] = max(last.get(key, 0), entry.pk)
    return last


def assert_reads_match_the_ledger(people) -> None:
    teams = [None] + [frozenset({p.agent.principal_id}) for p in people.values()]
    for principal_ids in teams:
        first, last = date(2026, 11, 2), date(2026, 12, 1)
        assert day_vendor_spend_read(
            principal_ids=principal_ids, first_day=first, last_day=last
        ) == ledger_days(principal_ids, first, last)
        assert spend_totals_read(principal_ids=principal_ids) == ledger_totals(principal_ids)
        for now, prefix in (
            (NOW, ""),
            (NOW, "PR-"),
            (NOW, "PR-B"),
            (datetime(2026, 11, 15, tzinfo=UTC), ""),
        ):
            read = trace_month_spend_read(principal_ids=principal_ids, now=now, prefix=prefix)
            assert [(row.trace_id, row.currency, row.cents) for row in read] == ledger_traces(
                principal_ids, now, prefix
            )
            traces = {row.trace_id for row in read} | {"PR-NONE"}
            spenders: dict[tuple, int] = {}
            for row in trace_month_spenders_read(
                principal_ids=principal_ids, now=now, trace_ids=traces
            ):
                key = (row.trace_id, row.currency, row.agent_id, row.vendor)
                spenders[key] = max(spenders.get(key, 0), row.last_entry_id)
            assert spenders == ledger_spenders(principal_ids, now, traces)


def test_reads_match_the_ledger_before_between_and_after_folds(history):
    assert not DaySpend.objects.exists()
    assert_reads_match_the_ledger(history)  # nothing folded: the tail is the ledger

    folded = spend_rollups_advance(now=NOW)  # the default grace: the last entry stays out
    newest = LedgerEntry.objects.order_by("-id").first()
    mark = SpendRollupMark.objects.get()
    assert folded == LedgerEntry.objects.count() - 1
    assert mark.last_entry_id == newest.pk - 1
    assert mark.advanced_at == NOW
    assert DaySpend.objects.exists()
    assert TraceMonthSpend.objects.exists()
    assert_reads_match_the_ledger(history)

    assert spend_rollups_advance(now=NOW + timedelta(minutes=1)) == 1
    assert SpendRollupMark.objects.get().last_entry_id == newest.pk
    assert_reads_match_the_ledger(history)
    assert spend_rollups_check() == []

    # New entries land in the tail, and in the rollups once folded.
    _decide(card_for(history["bob"], "openai"), "5.00", NOW + timedelta(minutes=2), trace="PR-BOB")
    assert_reads_match_the_ledger(history)
    assert spend_rollups_advance(now=NOW + timedelta(minutes=5)) == 1
    assert_reads_match_the_ledger(history)
    assert spend_rollups_check() == []


def test_a_late_capture_lands_on_the_day_of_its_purchase(history):
    spend_rollups_advance(now=NOW + timedelta(minutes=1))
    alice = history["alice"].agent
    openai = Vendor.objects.get(slug="openai")
    row = DaySpend.objects.get(
        day=date(2026, 11, 29), principal_id=alice.principal_id, vendor=openai
    )
    # The 12.50 hold, its capture (posted on 1 December, effective on the 29th), the
    # release of its hold, and the 2.50 refunded of it (linked: its purchase's day too).
    assert (row.cents, row.entries) == (1000, 4)
    month = TraceMonthSpend.objects.get(
        month=date(2026, 11, 1), trace_id="PR-1", principal_id=alice.principal_id
    )
    assert (month.cents, month.entries) == (1000 + 200, 5)
    spent = TraceAgentMonthSpend.objects.get(
        month=date(2026, 11, 1), trace_id="PR-1", agent_id=alice.pk, vendor=openai
    )
    assert (spent.cents, spent.entries, spent.principal_id) == (1000, 4, alice.principal_id)
    assert (
        spent.last_entry_id
        == LedgerEntry.objects.filter(agent_id=alice.pk, vendor=openai, trace_id="PR-1")
        .latest("id")
        .pk
    )


def test_folding_again_changes_nothing(history):
    spend_rollups_advance(now=NOW + timedelta(minutes=1))
    days = sorted(
        DaySpend.objects.values_list(
            "day", "principal_id", "vendor_id", "currency", "cents", "entries"
        )
    )
    traces = sorted(TraceMonthSpend.objects.values_list("month", "trace_id", "cents", "entries"))
    assert spend_rollups_advance(now=NOW + timedelta(minutes=2)) == 0
    assert (
        sorted(
            DaySpend.objects.values_list(
                "day", "principal_id", "vendor_id", "currency", "cents", "entries"
            )
        )
        == days
    )
    assert (
        sorted(TraceMonthSpend.objects.values_list("month", "trace_id", "cents", "entries"))
        == traces
    )


def test_small_batches_fold_the_same_rows(history, monkeypatch):
    spend_rollups_advance(now=NOW + timedelta(minutes=1))
    whole = sorted(
        DaySpend.objects.values_list(
            "day", "principal_id", "vendor_id", "currency", "cents", "entries"
        )
    )
    monkeypatch.setattr(rollups, "FOLD_BATCH", 2)
    spend_rollups_rebuild(now=NOW + timedelta(minutes=1))
    assert (
        sorted(
            DaySpend.objects.values_list(
                "day", "principal_id", "vendor_id", "currency", "cents", "entries"
            )
        )
        == whole
    )
    assert spend_rollups_check() == []


def test_a_rebuild_with_a_longer_grace_keeps_the_mark_where_it_was(history):
    # Reads take the mark as read before their statement as a lower bound of the tail:
    # a mark that moved back would hide the entries between the two from them.
    spend_rollups_advance(now=NOW + timedelta(minutes=1), grace=timedelta(0))
    newest = LedgerEntry.objects.order_by("-id").values_list("id", flat=True).first()
    assert SpendRollupMark.objects.get().last_entry_id == newest

    spend_rollups_rebuild(now=NOW + timedelta(minutes=1), grace=timedelta(days=365))
    assert SpendRollupMark.objects.get().last_entry_id == newest
    assert spend_rollups_check() == []
    assert_reads_match_the_ledger(history)


def test_the_check_finds_a_wrong_row_and_the_rebuild_repairs_it(history, capsys):
    spend_rollups_advance(now=NOW + timedelta(minutes=1))
    row = DaySpend.objects.order_by("id").first()
    DaySpend.objects.filter(pk=row.pk).update(cents=row.cents + 1)
    TraceMonthSpend.objects.filter(trace_id="PR-BOB").delete()
    TraceAgentMonthSpend.objects.filter(trace_id="PR-2").update(last_entry_id=1)
    mismatches = spend_rollups_check()
    assert {m.table for m in mismatches} == {"day", "trace month", "trace agent month"}
    day = next(m for m in mismatches if m.table == "day")
    assert (day.rolled_up, day.ledger) == ((row.cents + 1, row.entries), (row.cents, row.entries))
    with pytest.raises(CommandError, match="3 rollup row"):
        call_command("spend_rollups", "--check")
    assert "rollup" in capsys.readouterr().out

    call_command("spend_rollups", "--rebuild", "--grace", "0")
    assert "rebuilt: folded" in capsys.readouterr().out
    assert spend_rollups_check() == []
    call_command("spend_rollups", "--check")
    assert "agree with the ledger" in capsys.readouterr().out
    assert_reads_match_the_ledger(history)


def test_the_command_folds_and_refuses_a_negative_grace(history, capsys):
    call_command("spend_rollups", "--grace", "0")
    assert f"folded {LedgerEntry.objects.count()} entries" in capsys.readouterr().out
    with pytest.raises(CommandError, match="--grace"):
        call_command("spend_rollups", "--grace", "-1")


def test_the_beat_schedule_folds_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["advance-spend-rollups"]
    assert entry == {"task": "ledger.tasks.advance_spend_rollups_task", "schedule": 60}
    from ledger.tasks import advance_spend_rollups_task

    assert advance_spend_rollups_task.name == entry["task"]


def test_the_task_folds_through_celery(history):
    from ledger.tasks import advance_spend_rollups_task

    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        assert advance_spend_rollups_task.delay().get(timeout=10) == LedgerEntry.objects.count()
    assert spend_rollups_check() == []


@time_machine.travel(NOW + timedelta(minutes=5), tick=False)
def test_the_portal_pages_show_the_same_figures_folded_or_not(history):
    client = signed_in(user_with("Finance"))

    def figures():
        daily = client.get("/dashboard/daily/").context["daily_spend"]
        top_traces = client.get("/dashboard/traces/").context["top_traces"]
        ledger = client.get("/ledger/").context["totals"]
        traces = client.get("/traces/").context["traces"]
        return (
            [(c.currency, [(r.day, r.cents) for r in c.rows], c.vendors) for c in daily],
            [(c.currency, [(t.trace_id, t.spent) for t in c.traces]) for c in top_traces],
            ledger,
            [
                (r.trace_id, r.currency, r.spent, r.last_at, r.agents, r.vendors)
                for r in traces.rows
            ],
            traces.page.paginator.count,
        )

    before = figures()
    assert before[2]
    assert before[4] == 2  # this month: carol's PR-1 (in euros) and dave's PR-2
    spend_rollups_advance()
    assert SpendRollupMark.objects.get().last_entry_id == LedgerEntry.objects.order_by("-id")[0].pk
    assert figures() == before


# --- on PostgreSQL: folds that race, and reads while folds commit --------------------


def _in_thread(work):
    try:
        return work()
    finally:
        connections.close_all()  # this thread's own connection


def _spread_history(provision, count: int) -> None:
    """`count` charges a minute apart before NOW, over three teams."""
    agents = [provision(name=f"spread-{i}", email=f"team{i}@example.com") for i in range(3)]
    for i in range(count):
        card = card_for(agents[i % 3], ["openai", "aws", "github"][i % 3])
        _decide(card, f"{1 + i % 5}.25", NOW - timedelta(minutes=count - i), trace=f"PR-{i // 3}")


@pytest.mark.postgres
def test_racing_folds_count_every_entry_once(
    transactional_db, django_db_serialized_rollback, provision, requires_postgres, fx_rates
):
    _spread_history(provision, 30)
    barrier = threading.Barrier(4)

    def fold():
        barrier.wait(timeout=30)
        return spend_rollups_advance(now=NOW, grace=timedelta(0))

    threads_folded = []
    workers = [
        threading.Thread(target=lambda: threads_folded.append(_in_thread(fold))) for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert sorted(threads_folded) == [0, 0, 0, LedgerEntry.objects.count()]
    assert spend_rollups_check() == []


@pytest.mark.postgres
def test_reads_while_folds_commit_are_exact(
    transactional_db, django_db_serialized_rollback, provision, requires_postgres, fx_rates
):
    """A fold moves the mark and the rollups in one transaction, and a read takes both
    with the tail in one statement: a read between a fold's commit and the next never
    counts an entry twice or not at all."""
    _spread_history(provision, 40)
    expected = ledger_totals(None)
    expected_days = ledger_days(None, date(2026, 11, 1), date(2026, 12, 1))
    done = threading.Event()
    reads = []

    def read_until_done():
        while not done.is_set():
            reads.append(
                (
                    spend_totals_read(principal_ids=None),
                    day_vendor_spend_read(
                        principal_ids=None, first_day=date(2026, 11, 1), last_day=date(2026, 12, 1)
                    ),
                )
            )

    reader = threading.Thread(target=lambda: _in_thread(read_until_done))
    reader.start()
    try:
        for minute in range(41, -1, -1):  # one charge more per fold
            spend_rollups_advance(now=NOW - timedelta(minutes=minute), grace=timedelta(0))
    finally:
        done.set()
        reader.join(timeout=60)
    assert SpendRollupMark.objects.get().last_entry_id == LedgerEntry.objects.order_by("-id")[0].pk
    assert len(reads) > 10
    assert all(totals == expected and days == expected_days for totals, days in reads)
