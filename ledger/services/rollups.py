"""The spend rollups: the ledger folded by team, UTC day and vendor (DaySpend), by team,
UTC month and trace (TraceMonthSpend) and by agent and vendor within those
(TraceAgentMonthSpend), for the portal's charts, totals and trace lists, which would
otherwise group up to a month of entries on every load.

They are kept off the decision path: a periodic task folds the entries after the mark
(SpendRollupMark), in id order, and moves the mark, in one transaction. A read takes the
rollups and the ledger's entries after the mark in ONE statement (ledger.selectors), so
it sees a fold entirely or not at all, and is exact whenever the fold last ran.

Ids are handed out before their transactions commit, so an entry with a lower id may
become visible after a higher one. The fold therefore stops at the newest entry posted
`grace` ago or earlier: whatever id below it is still invisible then belongs to a
transaction older than the grace, and ledger writes are short (the network's run under
a 1.5 s deadline). `spend_rollups_check` compares the rollups with the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Count, DateField, Max, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone

from ledger.models import (
    DaySpend,
    LedgerEntry,
    SpendRollupMark,
    TraceAgentMonthSpend,
    TraceMonthSpend,
)

ROLLUP_GRACE = timedelta(seconds=60)
# Entries grouped per statement while folding: bounds the memory of a first fold.
FOLD_BATCH = 200_000


def _mark_locked() -> SpendRollupMark:
    mark, _ = SpendRollupMark.objects.select_for_update().get_or_create(pk=1)
    return mark


def spend_rollups_advance(*, now: datetime | None = None, grace: timedelta = ROLLUP_GRACE) -> int:
    """Fold every entry up to the newest one posted `grace` before `now` into the
    rollups and move the mark there. Returns the number of entries folded."""
    now = now or timezone.now()
    with transaction.atomic():
        mark = _mark_locked()
        return _fold_up_to(mark, _newest_posted(mark.last_entry_id, now - grace), now=now)


def spend_rollups_rebuild(*, now: datetime | None = None, grace: timedelta = ROLLUP_GRACE) -> int:
    """Drop the rollups and fold the whole ledger again, in one transaction (readers see
    the old rollups until it commits). Returns the number of entries folded. The mark
    ends where it was or later, never earlier: readers take it as a lower bound of the
    tail (ledger.selectors)."""
    now = now or timezone.now()
    with transaction.atomic():
        mark = _mark_locked()
        DaySpend.objects.all().delete()
        TraceMonthSpend.objects.all().delete()
        TraceAgentMonthSpend.objects.all().delete()
        high = max(mark.last_entry_id, _newest_posted(mark.last_entry_id, now - grace))
        mark.last_entry_id = 0
        return _fold_up_to(mark, high, now=now)


def _newest_posted(after: int, posted_by: datetime) -> int:
    """The id of the newest entry after `after` posted by then (`after` when none)."""
    high = LedgerEntry.objects.filter(id__gt=after, created_at__lte=posted_by).aggregate(
        high=Max("id")
    )["high"]
    return after if high is None else high


def _fold_up_to(mark: SpendRollupMark, high: int, *, now: datetime) -> int:
    folded, low = 0, mark.last_entry_id
    while low < high:
        step = min(low + FOLD_BATCH, high)
        folded += _fold(low=low, high=step)
        low = step
    mark.last_entry_id = max(mark.last_entry_id, high)
    mark.advanced_at = now
    mark.save()
    return folded


# The rollups' keys, as their model fields and in the order of the grouped reads below.
DAY_KEY = ("day", "principal_id", "vendor_id", "currency")
TRACE_KEY = ("month", "trace_id", "principal_id", "currency")
TRACE_AGENT_KEY = ("month", "trace_id", "principal_id", "agent_id", "vendor_id", "currency")
# The figures of each row: added up, but for the last entry's id (the largest).
FIGURES = ("cents", "entries")
TRACE_AGENT_FIGURES = ("cents", "entries", "last_entry_id")


def _day_groups(entries: QuerySet[LedgerEntry]) -> dict[tuple, tuple[int, int]]:
    """(day, principal, vendor, currency) -> (net cents, entries)."""
    rows = (
        entries.annotate(day=TruncDate("effective_at", tzinfo=UTC))
        .values_list("day", "agent__principal_id", "vendor_id", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"), entries=Count("id"))
    )
    return {tuple(key): (cents, count) for *key, cents, count in rows}


def _trace_groups(entries: QuerySet[LedgerEntry]) -> dict[tuple, tuple[int, int]]:
    """(month, trace, principal, currency) -> (net cents, entries), for traced entries."""
    rows = (
        entries.exclude(trace_id="")
        .annotate(month=TruncMonth("effective_at", tzinfo=UTC, output_field=DateField()))
        .values_list("month", "trace_id", "agent__principal_id", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"), entries=Count("id"))
    )
    return {tuple(key): (cents, count) for *key, cents, count in rows}


def _trace_agent_groups(entries: QuerySet[LedgerEntry]) -> dict[tuple, tuple[int, int, int]]:
    """(month, trace, principal, agent, vendor, currency) -> (net cents, entries, last id)."""
    rows = (
        entries.exclude(trace_id="")
        .annotate(month=TruncMonth("effective_at", tzinfo=UTC, output_field=DateField()))
        .values_list(
            "month",
            "trace_id",
            "agent__principal_id",
            "agent_id",
            "vendor_id",
            "cap_amount_currency",
        )
        .annotate(cents=Sum("cap_cents"), entries=Count("id"), last=Max("id"))
    )
    return {tuple(key): (cents, count, last) for *key, cents, count, last in rows}


Rollup = type[DaySpend | TraceMonthSpend | TraceAgentMonthSpend]


def _fold(*, low: int, high: int) -> int:
    """Add the entries with ids in (low, high] to the rollups."""
    entries = LedgerEntry.objects.filter(id__gt=low, id__lte=high).order_by()
    days = _day_groups(entries)
    _add(DaySpend, DAY_KEY, FIGURES, days)
    _add(TraceMonthSpend, TRACE_KEY, FIGURES, _trace_groups(entries))
    _add(TraceAgentMonthSpend, TRACE_AGENT_KEY, TRACE_AGENT_FIGURES, _trace_agent_groups(entries))
    return sum(count for _, count in days.values())


def _add(model: Rollup, key: tuple[str, ...], figures: tuple[str, ...], deltas: dict) -> None:
    """Add each key's figures to its row, creating the rows not there yet."""
    if not deltas:
        return
    first, second = key[:2]
    existing = {
        tuple(getattr(row, field) for field in key): row
        for row in model.objects.filter(
            **{f"{first}__in": {k[0] for k in deltas}, f"{second}__in": {k[1] for k in deltas}}
        )
    }
    changed, added = [], []
    for values, delta in deltas.items():
        row = existing.get(values)
        if row is None:
            fields = dict(zip((*key, *figures), (*values, *delta), strict=True))
            added.append(model(**fields))
            continue
        for field, value in zip(figures, delta, strict=True):
            held = getattr(row, field)
            setattr(row, field, max(held, value) if field == "last_entry_id" else held + value)
        changed.append(row)
    model.objects.bulk_update(changed, list(figures), batch_size=1000)
    model.objects.bulk_create(added, batch_size=1000)


@dataclass(frozen=True)
class RollupMismatch:
    table: str
    key: tuple[object, ...]
    rolled_up: tuple[object, ...] | None
    ledger: tuple[object, ...] | None


def spend_rollups_check() -> list[RollupMismatch]:
    """The rollups against the ledger's entries up to the mark, grouped again from
    scratch (reads the whole ledger once). Returns the rows that differ."""
    with transaction.atomic():
        mark = _mark_locked()
        entries = LedgerEntry.objects.filter(id__lte=mark.last_entry_id).order_by()
        days = _differences("day", _rolled(DaySpend, DAY_KEY, FIGURES), _day_groups(entries))
        traces = _differences(
            "trace month", _rolled(TraceMonthSpend, TRACE_KEY, FIGURES), _trace_groups(entries)
        )
        spenders = _differences(
            "trace agent month",
            _rolled(TraceAgentMonthSpend, TRACE_AGENT_KEY, TRACE_AGENT_FIGURES),
            _trace_agent_groups(entries),
        )
    return [*days, *traces, *spenders]


def _rolled(model: Rollup, key: tuple[str, ...], figures: tuple[str, ...]) -> dict:
    rows = model.objects.values_list(*key, *figures)
    return {tuple(row[: len(key)]): tuple(row[len(key) :]) for row in rows}


def _differences(
    table: str, rolled: dict[tuple, tuple], ledger: dict[tuple, tuple]
) -> list[RollupMismatch]:
    return [
        RollupMismatch(table, key, rolled.get(key), ledger.get(key))
        for key in sorted({*rolled, *ledger}, key=repr)
        if rolled.get(key) != ledger.get(key)
    ]
