"""Spend counters: bounded, exact reads of spend for every window a decision checks.

A rolling 24-hour window [start, now] is read as
  hour buckets fully inside it            (at most 24 rows)
+ minute buckets of the edge hour         (at most 59 rows)
+ a range SUM over the one edge minute    (ledger entries, via an index)
so its cost does not grow with the number of entries in the window. Months are one
bucket per scope (in the policy's time zone), traces one lifetime bucket. Counters are
derived data, written in the same transaction as the ledger entry; `counters_rebuild`
recomputes them from the ledger, which stays the source of truth.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection

from agentwallet.lib.timewindows import HOUR, MINUTE, ceil_to, floor_to, month_bounds
from ledger.models import CounterGrain, LedgerEntry, SpendCounter

ROLLING_DAY = timedelta(hours=24)
ROLLING_HOUR = timedelta(hours=1)
LIFETIME = datetime(1970, 1, 1, tzinfo=UTC)
# Minute and hour buckets older than this serve no window and may be pruned.
FINE_BUCKET_RETENTION = timedelta(hours=26)


def agent_scope(agent_id: object) -> str:
    return f"agent:{agent_id}"


def card_scope(card_id: object) -> str:
    return f"card:{card_id}"


def vendor_scope(agent_id: object, vendor_id: object) -> str:
    return f"vendor:{agent_id}:{vendor_id}"


def trace_scope(currency: str, trace_id: str) -> str:
    return f"trace:{currency}:{trace_id}"


@dataclass(frozen=True)
class Posting:
    """One ledger movement as the counters see it."""

    agent_id: object
    card_id: object | None
    vendor_id: object | None
    trace_id: str
    currency: str
    time_zone: str
    effective_at: datetime
    cents: int
    is_hold: bool


def month_start_utc(when: datetime, time_zone: str) -> datetime:
    """Start of the calendar month holding `when` in `time_zone`: its month bucket."""
    return month_bounds(when, time_zone)[0].astimezone(UTC)


def counter_rows(
    posting: Posting, *, month_start: datetime | None = None
) -> list[tuple[str, str, datetime, int, int]]:
    """(scope, grain, bucket_start, cents, holds) for every bucket the posting touches
    (`month_start`: its month bucket, when the caller has it already)."""
    when = posting.effective_at
    if month_start is None:
        month_start = month_start_utc(when, posting.time_zone)
    holds = 1 if posting.is_hold else 0
    agent = agent_scope(posting.agent_id)
    rows = [
        (
            agent,
            CounterGrain.MINUTE.value,
            floor_to(when, MINUTE).astimezone(UTC),
            posting.cents,
            holds,
        ),
        (
            agent,
            CounterGrain.HOUR.value,
            floor_to(when, HOUR).astimezone(UTC),
            posting.cents,
            holds,
        ),
        (agent, CounterGrain.MONTH.value, month_start, posting.cents, holds),
    ]
    if posting.card_id is not None:
        rows.append(
            (
                card_scope(posting.card_id),
                CounterGrain.MONTH.value,
                month_start,
                posting.cents,
                holds,
            )
        )
    if posting.vendor_id is not None:
        rows.append(
            (
                vendor_scope(posting.agent_id, posting.vendor_id),
                CounterGrain.MONTH.value,
                month_start,
                posting.cents,
                holds,
            )
        )
    if posting.trace_id:
        rows.append(
            (
                trace_scope(posting.currency, posting.trace_id),
                CounterGrain.TOTAL.value,
                LIFETIME,
                posting.cents,
                holds,
            )
        )
    return rows


def counters_add(postings: Iterable[Posting], *, cursor: Any = None) -> None:
    """Add postings to their buckets in one statement (INSERT ... ON CONFLICT DO UPDATE)."""
    merged: dict[tuple[str, str, datetime], list[int]] = {}
    for posting in postings:
        for scope, grain, bucket, cents, holds in counter_rows(posting):
            totals = merged.setdefault((scope, grain, bucket), [0, 0])
            totals[0] += cents
            totals[1] += holds
    rows = [
        (scope, str(grain), bucket, cents, holds)
        for (scope, grain, bucket), (cents, holds) in merged.items()
    ]
    if cursor is not None:
        counters_add_rows(cursor, rows)
        return
    with connection.cursor() as own_cursor:
        counters_add_rows(own_cursor, rows)


def counters_add_rows(cursor: Any, rows: Sequence[tuple[str, str, datetime, int, int]]) -> None:
    """Add (scope, grain, bucket_start, cents, holds) rows to their buckets; each bucket
    at most once in `rows`."""
    if not rows:
        return
    table = SpendCounter._meta.db_table
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
    params: list[object] = [value for row in rows for value in row]
    # Both PostgreSQL and SQLite (3.24+) speak this upsert; integers keep it exact.
    # Only the table name (a model constant) is interpolated; values are parameters.
    sql = (
        f"INSERT INTO {table} (scope, grain, bucket_start, cents, holds) VALUES {values} "
        f"ON CONFLICT (scope, grain, bucket_start) DO UPDATE SET "
        f"cents = {table}.cents + excluded.cents, holds = {table}.holds + excluded.holds"
    )
    cursor.execute(sql, db_params(params))


def db_params(params: Sequence[Any]) -> list[Any]:
    """Parameters for raw SQL: psycopg takes Python values as they are; SQLite wants
    Django's stored forms (naive UTC text for datetimes, text decimals, hex UUIDs)."""
    if connection.vendor == "postgresql":
        return list(params)
    ops = connection.ops
    adapted: list[Any] = []
    for value in params:
        if isinstance(value, datetime):
            value = ops.adapt_datetimefield_value(value)
        elif isinstance(value, date):
            value = ops.adapt_datefield_value(value)
        elif isinstance(value, Decimal):
            value = ops.adapt_decimalfield_value(value, 18, 8)
        elif isinstance(value, uuid.UUID):
            value = db_uuid(value)
        adapted.append(value)
    return adapted


def _placeholders(items: Sequence[object] | dict[str, object]) -> str:
    return ", ".join(["%s"] * len(items))


@dataclass(frozen=True)
class DecisionSpend:
    """Live spend for one authorization's scopes, in cents (see `read_decision_spend`)."""

    day_cents: int
    month_cents: int
    holds_last_hour: int
    card_month_cents: int
    vendor_month_cents: int
    trace_cents: int


@dataclass
class SpendSnapshot:
    """Spend of one agent (and the scopes a decision or budget asks about), in cents."""

    day_cents: int = 0
    month_cents: int = 0
    holds_last_hour: int = 0
    card_month_cents: dict[object, int] = field(default_factory=dict)
    vendor_month_cents: dict[object, int] = field(default_factory=dict)
    trace_cents: dict[str, int] = field(default_factory=dict)

    def narrowed(self, *, card_id: object, vendor_id: object, trace_id: str) -> DecisionSpend:
        """The figures a decision on this card, vendor and trace reads."""
        return DecisionSpend(
            day_cents=self.day_cents,
            month_cents=self.month_cents,
            holds_last_hour=self.holds_last_hour,
            card_month_cents=self.card_month_cents[card_id],
            vendor_month_cents=self.vendor_month_cents[vendor_id],
            trace_cents=self.trace_cents.get(trace_id, 0),
        )


def read_spend(
    *,
    agent_id: object,
    time_zone: str,
    currency: str,
    now: datetime,
    card_ids: Sequence[object] = (),
    vendor_ids: Sequence[object] = (),
    trace_ids: Sequence[str] = (),
    as_of_past: bool = False,
) -> SpendSnapshot:
    """Spend at `now`, in two queries: the counters, and the ledger at the edges.

    A rolling window [start, now] is the ledger over the partial minute at its start,
    minute buckets up to the first whole hour, then whole hour buckets.

    Live reads (the decision, the budget) count everything posted up to now and any
    later: another server's clock may run a few milliseconds ahead, and an entry it
    just committed must never look like "the future" and be left out. That errs
    towards declining, never towards overspending. `as_of_past=True` reads the past
    exactly instead (what the buckets hold after `now` is taken off again).
    """
    day_start = now - ROLLING_DAY
    hour_start = now - ROLLING_HOUR
    day_minutes_from = ceil_to(day_start, MINUTE)
    day_hours_from = ceil_to(day_start, HOUR)
    hour_minutes_from = ceil_to(hour_start, MINUTE)
    this_minute = floor_to(now, MINUTE)
    this_hour = floor_to(now, HOUR)
    month_start, month_end = (bound.astimezone(UTC) for bound in month_bounds(now, time_zone))
    agent = agent_scope(agent_id)
    cards = {card_scope(card_id): card_id for card_id in card_ids}
    vendors = {vendor_scope(agent_id, vendor_id): vendor_id for vendor_id in vendor_ids}
    traces = {trace_scope(currency, trace_id): trace_id for trace_id in trace_ids}

    table = SpendCounter._meta.db_table
    month_scopes = [agent, *cards, *vendors]
    conditions = [
        "(scope = %s AND grain = 'hour' AND bucket_start >= %s AND bucket_start <= %s)",
        "(scope = %s AND grain = 'min' AND bucket_start >= %s AND bucket_start < %s)",
        "(scope = %s AND grain = 'min' AND bucket_start >= %s AND bucket_start < %s)",
        f"(grain = 'month' AND bucket_start = %s AND scope IN ({_placeholders(month_scopes)}))",
    ]
    # Live reads take every later bucket too (see above); past reads stop at `now`.
    far_future = datetime(9999, 1, 1, tzinfo=UTC)
    params: list[object] = [
        agent,
        day_hours_from,
        this_hour if as_of_past else far_future,
        agent,
        day_minutes_from,
        day_hours_from,
        agent,
        hour_minutes_from,
        this_hour + HOUR if as_of_past else far_future,
        month_start,
        *month_scopes,
    ]
    if traces:
        conditions.append(f"(grain = 'total' AND scope IN ({_placeholders(traces)}))")
        params += list(traces)
    sql = (
        f"SELECT scope, grain, bucket_start, cents, holds FROM {table} "
        f"WHERE {' OR '.join(conditions)}"
    )
    snapshot = SpendSnapshot(
        card_month_cents=dict.fromkeys(card_ids, 0),
        vendor_month_cents=dict.fromkeys(vendor_ids, 0),
        trace_cents=dict.fromkeys(trace_ids, 0),
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, db_params(params))
        rows = cursor.fetchall()
    for scope, grain, raw_bucket, cents, holds in rows:
        bucket = db_datetime(raw_bucket)
        if grain == "month":
            if scope == agent:
                snapshot.month_cents += cents
            elif scope in cards:
                snapshot.card_month_cents[cards[scope]] += cents
            else:
                snapshot.vendor_month_cents[vendors[scope]] += cents
        elif grain == "total":
            snapshot.trace_cents[traces[scope]] += cents
        elif grain == "hour":
            snapshot.day_cents += cents
        else:  # minute buckets: the day's leading edge, the rolling hour, the future
            if day_minutes_from <= bucket < day_hours_from:
                snapshot.day_cents += cents
            if hour_minutes_from <= bucket and (bucket <= this_minute or not as_of_past):
                snapshot.holds_last_hour += holds
            if as_of_past and this_minute < bucket < this_hour + HOUR:
                snapshot.day_cents -= cents  # later minutes of the current hour bucket

    edges = _edge_sums(
        agent_id,
        day=(day_start, day_minutes_from),
        hour=(hour_start, hour_minutes_from),
        now=now,
        minute_end=this_minute + MINUTE,
        month_end=month_end,
    )
    snapshot.day_cents += edges.day_leading
    snapshot.holds_last_hour += edges.hour_leading_holds
    if as_of_past:
        snapshot.day_cents -= edges.future_this_minute
        snapshot.holds_last_hour -= edges.future_this_minute_holds
        snapshot.month_cents -= edges.future_this_month
        for card_id in snapshot.card_month_cents:
            snapshot.card_month_cents[card_id] -= edges.future_by_card.get(card_id, 0)
        for vendor_id in snapshot.vendor_month_cents:
            snapshot.vendor_month_cents[vendor_id] -= edges.future_by_vendor.get(vendor_id, 0)
    return snapshot


def read_decision_spend(cursor: Any, params: dict[str, Any]) -> DecisionSpend:
    """`read_spend` (live) for one card, vendor and trace, summed by the database in one
    statement: the decision reads six numbers instead of a row per bucket. A test holds
    the two to the same figures. `params`: from `decision_spend_params`."""
    cursor.execute(DECISION_SPEND_SQL, params)
    return decision_spend_of(cursor.fetchone())


def decision_spend_params(
    *,
    agent_id: object,
    card_id: object,
    vendor_id: object,
    trace_id: str,
    month_start: datetime,
    currency: str,
    now: datetime,
) -> dict[str, Any]:
    """The parameters of the decision's spend read (DECISION_SPEND_SQL, also run inside
    the function of migration ledger 0004); `month_start`: see month_start_utc."""
    day_start = now - ROLLING_DAY
    hour_start = now - ROLLING_HOUR
    params = {
        "agent": agent_scope(agent_id),
        "agent_id": db_uuid(agent_id),
        "card": card_scope(card_id),
        "vendor": vendor_scope(agent_id, vendor_id),
        "trace": trace_scope(currency, trace_id) if trace_id else "",
        "day_start": day_start,
        "day_minutes_from": ceil_to(day_start, MINUTE),
        "day_hours_from": ceil_to(day_start, HOUR),
        "hour_start": hour_start,
        "hour_minutes_from": ceil_to(hour_start, MINUTE),
        "month_start": month_start,
    }
    return dict(zip(params, db_params(list(params.values())), strict=True))


def decision_spend_of(row: Sequence[Any]) -> DecisionSpend:
    day, month, holds, card, vendor, trace = row
    return DecisionSpend(
        day_cents=int(day),
        month_cents=int(month),
        holds_last_hour=int(holds),
        card_month_cents=int(card),
        vendor_month_cents=int(vendor),
        trace_cents=int(trace),
    )


def _bucket_sum(column: str, condition: str) -> str:
    table = SpendCounter._meta.db_table
    return f"(SELECT COALESCE(SUM({column}), 0) FROM {table} WHERE {condition})"


def _month(scope: str) -> str:
    return _bucket_sum(
        "cents", f"scope = %({scope})s AND grain = 'month' AND bucket_start = %(month_start)s"
    )


# The spend read's parameters and their PostgreSQL types (see decision_sql, which also
# sends it from inside a function).
DECISION_SPEND_PARAMS = {
    "agent": "text",
    "agent_id": "uuid",
    "card": "text",
    "vendor": "text",
    "trace": "text",
    "day_start": "timestamptz",
    "day_minutes_from": "timestamptz",
    "day_hours_from": "timestamptz",
    "hour_start": "timestamptz",
    "hour_minutes_from": "timestamptz",
    "month_start": "timestamptz",
}

# Live reads: hour and minute buckets after `now` count too (see read_spend).
DECISION_SPEND_SQL = f"""SELECT
  {_bucket_sum("cents", "scope = %(agent)s AND grain = 'hour' AND bucket_start >= %(day_hours_from)s")}
  + {_bucket_sum("cents", "scope = %(agent)s AND grain = 'min' AND bucket_start >= %(day_minutes_from)s AND bucket_start < %(day_hours_from)s")}
  + (SELECT COALESCE(SUM(cap_cents), 0) FROM {LedgerEntry._meta.db_table}
     WHERE agent_id = %(agent_id)s
       AND effective_at >= %(day_start)s AND effective_at < %(day_minutes_from)s),
  {_month("agent")},
  {_bucket_sum("holds", "scope = %(agent)s AND grain = 'min' AND bucket_start >= %(hour_minutes_from)s")}
  + (SELECT COUNT(*) FROM {LedgerEntry._meta.db_table}
     WHERE agent_id = %(agent_id)s AND kind = 'hold'
       AND effective_at >= %(hour_start)s AND effective_at < %(hour_minutes_from)s),
  {_month("card")},
  {_month("vendor")},
  {_bucket_sum("cents", "scope = %(trace)s AND grain = 'total'")}
"""  # noqa: E501


def db_datetime(value: object) -> datetime:
    if isinstance(value, str):  # SQLite returns text
        parsed = connection.ops.convert_datetimefield_value(value, None, connection)
    else:
        parsed = value
    if not isinstance(parsed, datetime):
        raise TypeError(f"Unexpected bucket value {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class _Edges:
    day_leading: int = 0
    hour_leading_holds: int = 0
    future_this_minute: int = 0
    future_this_minute_holds: int = 0
    future_this_month: int = 0
    future_by_card: dict[object, int] = field(default_factory=dict)
    future_by_vendor: dict[object, int] = field(default_factory=dict)


def _edge_sums(
    agent_id: object,
    *,
    day: tuple[datetime, datetime],
    hour: tuple[datetime, datetime],
    now: datetime,
    minute_end: datetime,
    month_end: datetime,
) -> _Edges:
    """The ledger over the windows' leading partial minutes, and anything after `now`."""
    table = LedgerEntry._meta.db_table
    sql = (
        "SELECT card_id, vendor_id, "
        "SUM(CASE WHEN effective_at >= %s AND effective_at < %s THEN cap_cents ELSE 0 END), "
        "SUM(CASE WHEN kind = 'hold' AND effective_at >= %s AND effective_at < %s "
        "THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN effective_at > %s AND effective_at < %s THEN cap_cents ELSE 0 END), "
        "SUM(CASE WHEN kind = 'hold' AND effective_at > %s AND effective_at < %s "
        "THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN effective_at > %s AND effective_at < %s THEN cap_cents ELSE 0 END) "
        f"FROM {table} WHERE agent_id = %s AND ("
        "(effective_at >= %s AND effective_at < %s) OR (effective_at >= %s AND effective_at < %s)"
        " OR (effective_at > %s AND effective_at < %s)) "
        "GROUP BY card_id, vendor_id"
    )
    params = [
        *day,
        *hour,
        now,
        minute_end,
        now,
        minute_end,
        now,
        month_end,
        db_uuid(agent_id),
        *day,
        *hour,
        now,
        month_end,
    ]
    edges = _Edges()
    with connection.cursor() as cursor:
        cursor.execute(sql, db_params(params))
        rows = cursor.fetchall()
    for card_id, vendor_id, day_lead, hour_holds, fut_min, fut_min_holds, fut_month in rows:
        edges.day_leading += int(day_lead or 0)
        edges.hour_leading_holds += int(hour_holds or 0)
        edges.future_this_minute += int(fut_min or 0)
        edges.future_this_minute_holds += int(fut_min_holds or 0)
        edges.future_this_month += int(fut_month or 0)
        if card_id is not None:
            key = _card_key(card_id)
            edges.future_by_card[key] = edges.future_by_card.get(key, 0) + int(fut_month or 0)
        if vendor_id is not None:
            edges.future_by_vendor[vendor_id] = edges.future_by_vendor.get(vendor_id, 0) + int(
                fut_month or 0
            )
    return edges


def _card_key(value: object) -> object:
    """Card ids come back as UUID (PostgreSQL) or 32-char hex (SQLite)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def db_uuid(value: object) -> object:
    # SQLite stores UUIDs as 32-char hex; PostgreSQL takes the UUID itself.
    if connection.vendor == "sqlite":
        return getattr(value, "hex", str(value).replace("-", ""))
    return value


def counters_rebuild() -> int:
    """Recompute every counter from the ledger (the source of truth). Returns rows written."""
    from wallets.models import Agent

    SpendCounter.objects.all().delete()
    agents = {agent.pk: agent for agent in Agent.objects.select_related("policy")}
    postings = []
    for entry in LedgerEntry.objects.order_by("id").iterator(chunk_size=2000):
        policy = agents[entry.agent_id].policy
        postings.append(
            Posting(
                agent_id=entry.agent_id,
                card_id=entry.card_id,
                vendor_id=entry.vendor_id,
                trace_id=entry.trace_id,
                currency=str(entry.cap_amount.currency),
                time_zone=policy.time_zone,
                effective_at=entry.effective_at,
                cents=entry.cap_cents,
                is_hold=entry.kind == "hold",
            )
        )
        if len(postings) >= 2000:
            counters_add(postings)
            postings = []
    counters_add(postings)
    return SpendCounter.objects.count()


def counters_prune(*, now: datetime) -> int:
    """Drop minute and hour buckets no rolling window reads any more."""
    cutoff = now - FINE_BUCKET_RETENTION
    deleted, _ = SpendCounter.objects.filter(
        grain__in=[CounterGrain.MINUTE, CounterGrain.HOUR], bucket_start__lt=cutoff
    ).delete()
    return deleted
