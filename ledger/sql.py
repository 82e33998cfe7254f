"""The money path's statements in plain SQL, one per purpose.

A decision runs them while it holds its agent's row lock, so what they cost is how long
the agent's other decisions wait. They are plain SQL where the ORM measurably cost
more than the statement itself (about three times, for the load and the inserts; see
bench/README.md); everything else in the ledger uses the ORM. They run unchanged on
PostgreSQL and SQLite. Only table and column names are written into the SQL, every value
is a parameter; on SQLite values are passed in the forms Django stores (`db_values`).

Spend is kept in counters (ledger_spendcounter), written with the ledger entry in the
same transaction, so that reading a window costs a bounded number of rows whatever it
holds. A rolling window [start, now] is read as
  whole hour buckets inside it                (at most 24 rows)
+ minute buckets of its first, partial hour   (at most 59 rows)
+ the ledger over its first, partial minute   (a range over an index)
Calendar months are one bucket per scope, cut in the agent's month time zone, and a
trace's spend is one lifetime bucket. The ledger stays the source of truth: the counters
can be rebuilt from it (ledger.services.counters).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection

from agentwallet.lib.money import CENT, to_cents
from agentwallet.lib.timewindows import HOUR, MINUTE, ceil_to, floor_to, month_bounds
from ledger.models import Authorization
from policies import rules

ROLLING_DAY = timedelta(hours=24)
ROLLING_HOUR = timedelta(hours=1)
# The one bucket of a trace's lifetime counter.
LIFETIME = datetime(1970, 1, 1, tzinfo=UTC)


# --- The card's facts, with its agent's row locked ---------------------------------

# What a decision reads about the card: each column by the name the code knows it by.
# (Zipped with the row by these names: psycopg's cursor.description cost a tenth of a
# decision's CPU.)
_CARD_FACTS_COLUMNS = {
    "card_status": "c.status",
    "card_expires_at": "c.expires_at",
    "exp_year": "c.exp_year",
    "exp_month": "c.exp_month",
    "allowed_mccs": "c.allowed_mccs",
    "allowed_merchant_ids": "c.allowed_merchant_ids",
    "learned_merchant_id": "c.learned_merchant_id",
    "card_cap": "c.monthly_cap",
    "single_use": "c.single_use",
    "card_trace_id": "c.trace_id",
    "vendor_id": "v.id",
    "vendor_slug": "v.slug",
    "vendor_name": "v.name",
    "vendor_descriptors": "v.descriptors",
    "vendor_network_ids": "v.network_ids",
    "descriptor_lock": "v.descriptor_lock",
    "merchant_id_lock": "v.merchant_id_lock",
    "vendor_cap": "vc.monthly_cap",
    "agent_id": "a.id",
    "agent_status": "a.status",
    "agent_trace_id": "a.trace_id",
    "agent_trace_expires_at": "a.trace_expires_at",
    "bumps_valid_until": "a.bumps_valid_until",
    "currency": "p.currency",
    "daily_cap": "p.daily_cap",
    "monthly_cap": "p.monthly_cap",
    "per_trace_cap": "p.per_trace_cap",
    "per_authorization_cap": "p.per_authorization_cap",
    "velocity_per_hour": "p.velocity_per_hour",
    "warning_thresholds": "p.warning_thresholds",
    "principal_verified": "pr.email_verified_at IS NOT NULL",
    "unverified_charge_limit": "p.unverified_charge_limit",
    "month_time_zone": "COALESCE(z.time_zone, p.time_zone)",
    # Network ids are unique across all events: is this one a posting's already?
    "event_id_taken": (
        "EXISTS (SELECT 1 FROM ledger_networkevent e WHERE e.event_id = %(network_id)s)"
    ),
}
CARD_FACTS = f"""
SELECT {", ".join(f"{source} AS {name}" for name, source in _CARD_FACTS_COLUMNS.items())}
FROM cards_card c
JOIN wallets_agent a ON a.id = c.agent_id
JOIN policies_policy p ON p.id = a.policy_id
JOIN wallets_principal pr ON pr.id = a.principal_id
JOIN policies_vendor v ON v.id = c.vendor_id
LEFT JOIN policies_policyvendorcap vc ON vc.policy_id = p.id AND vc.vendor_id = c.vendor_id
LEFT JOIN ledger_monthcounterzone z ON z.agent_id = a.id
WHERE c.id = %(card_id)s
"""


@dataclass(frozen=True)
class CardFacts:
    """What the rules need about a card, its vendor, its agent and the agent's policy.
    Caps are in cents of the policy's currency; None where the policy sets none."""

    card_id: uuid.UUID
    card_status: str
    card_expires_at: datetime | None
    exp_year: int
    exp_month: int
    allowed_mccs: tuple[str, ...]
    allowed_merchant_ids: tuple[str, ...]
    learned_merchant_id: str
    card_cap_cents: int | None
    single_use: bool
    card_trace_id: str
    vendor_id: int
    vendor_slug: str
    vendor_name: str
    merchant_lock: rules.MerchantLock
    vendor_cap_cents: int | None
    agent_id: uuid.UUID
    agent_status: str
    agent_trace_id: str
    agent_trace_expires_at: datetime | None
    bumps_valid_until: datetime | None
    currency: str
    daily_cap_cents: int
    monthly_cap_cents: int
    per_trace_cap_cents: int | None
    per_authorization_cap_cents: int | None
    velocity_per_hour: int | None
    warning_thresholds: tuple[int, ...]
    # The policy's limit on one charge while the principal is unverified (None: none,
    # or verified).
    unverified_charge_cents: int | None
    # The zone the agent's month counters are cut in: its policy's, except while they are
    # being cut again after the policy's zone changed (ledger.models.MonthCounterZone).
    month_time_zone: str
    event_id_taken: bool

    def active_trace_at(self, when: datetime) -> str:
        """The agent's trace context in force at `when`, or ""."""
        expires = self.agent_trace_expires_at
        return self.agent_trace_id if expires is not None and expires > when else ""


def card_facts_lock(cursor: Any, *, card_id: str, network_id: str) -> CardFacts | None:
    """Load the card's facts and lock its agent's row (FOR UPDATE on PostgreSQL; on
    SQLite the IMMEDIATE transaction already holds the database's write lock). None when
    there is no such card.

    The facts are read as of the statement's start, before any wait for the lock: a
    freeze that commits while a decision waits applies from the next one on."""
    try:
        card_uuid = uuid.UUID(card_id)
    except ValueError:
        return None
    lock = " FOR UPDATE OF a" if connection.vendor == "postgresql" else ""
    cursor.execute(CARD_FACTS + lock, db_values({"card_id": card_uuid, "network_id": network_id}))
    row = cursor.fetchone()
    if row is None:
        return None
    got = dict(zip(_CARD_FACTS_COLUMNS, row, strict=True))
    return CardFacts(
        card_id=card_uuid,
        card_status=got["card_status"],
        card_expires_at=datetime_of(got["card_expires_at"]),
        exp_year=got["exp_year"],
        exp_month=got["exp_month"],
        allowed_mccs=tuple(json_of(got["allowed_mccs"])),
        allowed_merchant_ids=tuple(json_of(got["allowed_merchant_ids"]) or ()),
        learned_merchant_id=got["learned_merchant_id"],
        card_cap_cents=cents_of(got["card_cap"]),
        single_use=bool(got["single_use"]),
        card_trace_id=got["card_trace_id"],
        vendor_id=got["vendor_id"],
        vendor_slug=got["vendor_slug"],
        vendor_name=got["vendor_name"],
        merchant_lock=rules.MerchantLock(
            descriptors=_descriptors(got["vendor_descriptors"]),
            network_ids=tuple(json_of(got["vendor_network_ids"]) or ()),
            descriptor_lock=bool(got["descriptor_lock"]),
            merchant_id_lock=bool(got["merchant_id_lock"]),
        ),
        vendor_cap_cents=cents_of(got["vendor_cap"]),
        agent_id=uuid_of(got["agent_id"]),
        agent_status=got["agent_status"],
        agent_trace_id=got["agent_trace_id"],
        agent_trace_expires_at=datetime_of(got["agent_trace_expires_at"]),
        bumps_valid_until=datetime_of(got["bumps_valid_until"]),
        currency=got["currency"],
        daily_cap_cents=cents_of(got["daily_cap"]) or 0,
        monthly_cap_cents=cents_of(got["monthly_cap"]) or 0,
        per_trace_cap_cents=cents_of(got["per_trace_cap"]),
        per_authorization_cap_cents=cents_of(got["per_authorization_cap"]),
        velocity_per_hour=got["velocity_per_hour"],
        warning_thresholds=tuple(json_of(got["warning_thresholds"]) or ()),
        unverified_charge_cents=None
        if got["principal_verified"]
        else cents_of(got["unverified_charge_limit"]),
        month_time_zone=got["month_time_zone"],
        event_id_taken=bool(got["event_id_taken"]),
    )


@functools.lru_cache(maxsize=4096)
def _descriptors_normalised(raw: str) -> tuple[str, ...]:
    return tuple(rules.descriptor_normalise(text) for text in json.loads(raw))


def _descriptors(value: Any) -> tuple[str, ...]:
    """The vendor's descriptors, normalised once per distinct list (they rarely change)."""
    return _descriptors_normalised(value if isinstance(value, str) else json.dumps(value or []))


# --- The trace's budget row ---------------------------------------------------------

TRACE_ROW_ENSURE = """
INSERT INTO ledger_tracebudget (trace_id, created_at) VALUES (%(trace_id)s, %(now)s)
ON CONFLICT (trace_id) DO NOTHING
"""
TRACE_ROW_LOCK = "SELECT id FROM ledger_tracebudget WHERE trace_id = %(trace_id)s FOR UPDATE"


def trace_lock(cursor: Any, *, trace_id: str, now: datetime) -> None:
    """Lock the trace's budget row, made on its first use. A trace's cap is shared by
    every agent that spends on it, so decisions on one trace take turns here; they take
    it after their agent's lock, always in that order, so two cannot deadlock.
    SQLite: the IMMEDIATE transaction serializes every writer already."""
    if connection.vendor != "postgresql":
        return
    params = {"trace_id": trace_id, "now": now}
    cursor.execute(TRACE_ROW_LOCK, params)
    if cursor.fetchone() is None:  # the trace's first decision: make its row, then lock it
        cursor.execute(TRACE_ROW_ENSURE, params)
        cursor.execute(TRACE_ROW_LOCK, params)


# --- Spend: the one read for decisions, budgets and the rebuild check ---------------


def agent_scope(agent_id: object) -> str:
    return f"agent:{agent_id}"


def card_scope(card_id: object) -> str:
    return f"card:{card_id}"


def vendor_scope(agent_id: object, vendor_id: object) -> str:
    return f"vendor:{agent_id}:{vendor_id}"


def trace_scope(currency: str, trace_id: str) -> str:
    """Trace budgets are per cap currency: spend in USD and in EUR never add up."""
    return f"trace:{currency}:{trace_id}"


def month_start_utc(when: datetime, time_zone: str) -> datetime:
    """The start of the calendar month holding `when` in `time_zone`: its month bucket."""
    return month_bounds(when, time_zone)[0].astimezone(UTC)


@dataclass(frozen=True)
class Spend:
    """An agent's live spend, in cents of its cap currency, for the scopes asked for."""

    day_cents: int  # the rolling 24 hours
    month_cents: int  # the calendar month
    holds_last_hour: int  # approvals in the rolling hour (velocity)
    card_month_cents: dict[uuid.UUID, int]
    vendor_month_cents: dict[int, int]
    trace_cents: dict[str, int]


# The rolling windows' parts, labelled by the figure they add to. Live reads have no
# upper bound: another server's clock may run a little ahead, and what it just
# committed must count, never look like the future. That errs towards declining.
_SPEND_DAY_AND_HOUR = """
SELECT 'day' AS figure, scope, cents, 0 AS holds FROM ledger_spendcounter
 WHERE scope = %(agent)s AND grain = 'hour' AND bucket_start >= %(day_hours_from)s
UNION ALL
SELECT 'day', scope, cents, 0 FROM ledger_spendcounter
 WHERE scope = %(agent)s AND grain = 'min'
   AND bucket_start >= %(day_minutes_from)s AND bucket_start < %(day_hours_from)s
UNION ALL
SELECT 'day', '', cap_cents, 0 FROM ledger_ledgerentry
 WHERE agent_id = %(agent_id)s
   AND effective_at >= %(day_start)s AND effective_at < %(day_minutes_from)s
UNION ALL
SELECT 'hour', scope, 0, holds FROM ledger_spendcounter
 WHERE scope = %(agent)s AND grain = 'min' AND bucket_start >= %(hour_minutes_from)s
UNION ALL
SELECT 'hour', '', 0, 1 FROM ledger_ledgerentry
 WHERE agent_id = %(agent_id)s AND kind = 'hold'
   AND effective_at >= %(hour_start)s AND effective_at < %(hour_minutes_from)s
"""
_SPEND_MONTHS = """
UNION ALL
SELECT 'month', scope, cents, 0 FROM ledger_spendcounter
 WHERE grain = 'month' AND bucket_start = %(month_start)s AND scope IN ({month_scopes})
"""
_SPEND_TRACES = """
UNION ALL
SELECT 'trace', scope, cents, 0 FROM ledger_spendcounter
 WHERE grain = 'total' AND scope IN ({trace_scopes})
"""


def spend_read(
    cursor: Any,
    *,
    agent_id: uuid.UUID,
    currency: str,
    month_time_zone: str,
    now: datetime,
    card_ids: Sequence[uuid.UUID] = (),
    vendor_ids: Sequence[int] = (),
    trace_ids: Sequence[str] = (),
) -> Spend:
    """The agent's spend at `now`, in one statement. A decision asks for one card,
    vendor and trace; the budget for all of them. A caller that holds the agent's lock
    sees every decision committed before it."""
    day_start = now - ROLLING_DAY
    hour_start = now - ROLLING_HOUR
    agent = agent_scope(agent_id)
    months = {agent: None} | {card_scope(card): card for card in card_ids}
    months |= {vendor_scope(agent_id, vendor): vendor for vendor in vendor_ids}
    traces = {trace_scope(currency, trace): trace for trace in trace_ids}
    params: dict[str, Any] = {
        "agent": agent,
        "agent_id": agent_id,
        "day_start": day_start,
        "day_minutes_from": ceil_to(day_start, MINUTE),
        "day_hours_from": ceil_to(day_start, HOUR),
        "hour_start": hour_start,
        "hour_minutes_from": ceil_to(hour_start, MINUTE),
        "month_start": month_start_utc(now, month_time_zone),
    }
    query = _SPEND_DAY_AND_HOUR + _SPEND_MONTHS.format(
        month_scopes=_named_list(params, "month", months)
    )
    if traces:
        query += _SPEND_TRACES.format(trace_scopes=_named_list(params, "trace", traces))
    cursor.execute(
        f"SELECT figure, scope, SUM(cents), SUM(holds) FROM ({query}) AS parts "
        "GROUP BY figure, scope",
        db_values(params),
    )
    figures = {"day": 0, "hour": 0}
    card_month = dict.fromkeys(card_ids, 0)
    vendor_month = dict.fromkeys(vendor_ids, 0)
    month = 0
    trace_cents = dict.fromkeys(trace_ids, 0)
    for figure, scope, cents, holds in cursor.fetchall():
        if figure == "day":
            figures["day"] += int(cents)
        elif figure == "hour":
            figures["hour"] += int(holds)
        elif figure == "trace":
            trace_cents[traces[scope]] += int(cents)
        elif scope == agent:
            month += int(cents)
        elif scope.startswith("card:"):
            card_month[months[scope]] += int(cents)
        else:
            vendor_month[months[scope]] += int(cents)
    return Spend(
        day_cents=figures["day"],
        month_cents=month,
        holds_last_hour=figures["hour"],
        card_month_cents=card_month,
        vendor_month_cents=vendor_month,
        trace_cents=trace_cents,
    )


def _named_list(params: dict[str, Any], prefix: str, values: Iterable[str]) -> str:
    """`%(prefix0)s, %(prefix1)s, ...` for an IN list, its values added to `params`."""
    names = []
    for index, value in enumerate(values):
        params[f"{prefix}{index}"] = value
        names.append(f"%({prefix}{index})s")
    return ", ".join(names)


# --- Writes: an authorization; an approval with its hold and counters -------------

# Every column of ledger.models.Authorization, each value the parameter of its name.
AUTHORIZATION_COLUMNS = tuple(
    field.column for field in Authorization._meta.concrete_fields if not field.primary_key
)
_AUTHORIZATION_INSERT = (
    f"INSERT INTO ledger_authorization ({', '.join(AUTHORIZATION_COLUMNS)}) "
    f"VALUES ({', '.join(f'%({column})s' for column in AUTHORIZATION_COLUMNS)}) "
    "ON CONFLICT (network_id) DO NOTHING"
)
AUTHORIZATION_INSERT = f"{_AUTHORIZATION_INSERT} RETURNING id"

# An approval's hold entry, made from its authorization's row: the amount held, at the
# decision's time.
_HOLD_FROM = """
INSERT INTO ledger_ledgerentry (kind, rail, flag, network_txn_id, memo, agent_id, card_id,
    vendor_id, authorization_id, trace_id, amount, amount_currency, cap_amount,
    cap_amount_currency, cap_cents, fx_rate, created_at, effective_at)
SELECT 'hold', 'card', '', NULL, '', agent_id, card_id, vendor_id, id, trace_id, amount,
    amount_currency, cap_amount, cap_amount_currency, held_cents, fx_rate, decided_at,
    decided_at
FROM """
HOLD_INSERT = f"{_HOLD_FROM} ledger_authorization WHERE id = %(authorization_id)s"

_COUNTERS_ADD = (
    "ON CONFLICT (scope, grain, bucket_start) DO UPDATE SET "
    "cents = ledger_spendcounter.cents + excluded.cents, "
    "holds = ledger_spendcounter.holds + excluded.holds"
)
# PostgreSQL takes the buckets as five arrays: whatever their number, the statement has
# five parameters, and psycopg caches its parsing (it parses one of more than 50
# parameters again on every call). SQLite takes a VALUES list (_counters_values).
COUNTERS_UPSERT = (
    "INSERT INTO ledger_spendcounter (scope, grain, bucket_start, cents, holds) "
    "SELECT * FROM unnest(%(counter_scopes)s::text[], %(counter_grains)s::text[], "
    "%(counter_starts)s::timestamptz[], %(counter_cents)s::bigint[], "
    f"%(counter_holds)s::integer[]) {_COUNTERS_ADD}"
)
# PostgreSQL: the three inserts of an approval in one statement (data-modifying CTEs), so
# that the agent's lock is held one round trip rather than three. The counters are
# added even when the network id was taken; the caller then rolls them back.
APPROVAL_INSERT = (
    f"WITH new_authorization AS ({_AUTHORIZATION_INSERT} RETURNING *), "
    f"new_hold AS ({_HOLD_FROM} new_authorization), "
    f"new_counters AS ({COUNTERS_UPSERT}) "
    "SELECT id FROM new_authorization"
)


def authorization_insert(cursor: Any, row: Mapping[str, Any]) -> int | None:
    """Insert a declined authorization (`row`: a value for each of AUTHORIZATION_COLUMNS).
    None when its network id is taken: it was decided before, or a replay raced us."""
    cursor.execute(AUTHORIZATION_INSERT, db_values(row))
    found = cursor.fetchone()
    return None if found is None else int(found[0])


def approval_insert(cursor: Any, authorization: Mapping[str, Any], posting: Posting) -> int | None:
    """Write an approval: the authorization, its hold entry and the hold's counter
    buckets. None when the network id is taken; the caller then rolls the whole
    transaction back. One statement on PostgreSQL; SQLite, whose writers are serialized
    anyway, runs the same three inserts one after the other."""
    buckets = _buckets([posting])
    if connection.vendor == "postgresql":
        cursor.execute(APPROVAL_INSERT, {**authorization, **_counter_arrays(buckets)})
        found = cursor.fetchone()
        return None if found is None else int(found[0])
    auth_id = authorization_insert(cursor, authorization)
    if auth_id is not None:
        cursor.execute(HOLD_INSERT, {"authorization_id": auth_id})
        _counters_upsert(cursor, buckets)
    return auth_id


@dataclass(frozen=True)
class Posting:
    """One ledger movement as the counters see it: signed cents of the cap currency,
    counted at `effective_at`."""

    agent_id: uuid.UUID
    card_id: uuid.UUID | None
    vendor_id: int | None
    trace_id: str
    currency: str
    month_time_zone: str
    effective_at: datetime
    cents: int
    is_hold: bool


def counter_rows(posting: Posting) -> list[tuple[str, str, datetime, int, int]]:
    """(scope, grain, bucket_start, cents, holds) of every bucket the posting moves."""
    when = posting.effective_at
    holds = 1 if posting.is_hold else 0
    month = month_start_utc(when, posting.month_time_zone)
    agent = agent_scope(posting.agent_id)
    rows = [
        (agent, "min", floor_to(when, MINUTE).astimezone(UTC), posting.cents, holds),
        (agent, "hour", floor_to(when, HOUR).astimezone(UTC), posting.cents, holds),
        (agent, "month", month, posting.cents, holds),
    ]
    if posting.card_id is not None:
        rows.append((card_scope(posting.card_id), "month", month, posting.cents, holds))
    if posting.vendor_id is not None:
        scope = vendor_scope(posting.agent_id, posting.vendor_id)
        rows.append((scope, "month", month, posting.cents, holds))
    if posting.trace_id:
        scope = trace_scope(posting.currency, posting.trace_id)
        rows.append((scope, "total", LIFETIME, posting.cents, holds))
    return rows


def counters_add(
    cursor: Any, postings: Iterable[Posting], *, grains: Sequence[str] | None = None
) -> None:
    """Add postings to their buckets, in one upsert (integers: exact on both databases).
    `grains`: only buckets of these grains (a recut cuts the months again)."""
    buckets = _buckets(postings, grains)
    if buckets:
        _counters_upsert(cursor, buckets)


def counters_upsert_params(postings: Iterable[Posting]) -> dict[str, list[Any]]:
    """COUNTERS_UPSERT's parameters (PostgreSQL) for these postings, for a statement that
    adds them with its own inserts (data-modifying CTEs, as APPROVAL_INSERT)."""
    return _counter_arrays(_buckets(postings))


Bucket = tuple[str, str, datetime]  # scope, grain, start


def _buckets(
    postings: Iterable[Posting], grains: Sequence[str] | None = None
) -> dict[Bucket, list[int]]:
    """[cents, holds] per bucket: each bucket once, as one upsert may touch a row once."""
    buckets: dict[Bucket, list[int]] = {}
    for posting in postings:
        for scope, grain, bucket_start, cents, holds in counter_rows(posting):
            if grains is None or grain in grains:
                totals = buckets.setdefault((scope, grain, bucket_start), [0, 0])
                totals[0] += cents
                totals[1] += holds
    return buckets


def _counters_upsert(cursor: Any, buckets: Mapping[Bucket, list[int]]) -> None:
    if connection.vendor == "postgresql":
        cursor.execute(COUNTERS_UPSERT, _counter_arrays(buckets))
        return
    params: dict[str, Any] = {}
    values = []
    for index, ((scope, grain, bucket_start), (cents, holds)) in enumerate(buckets.items()):
        names = [f"{field}{index}" for field in ("s", "g", "b", "c", "h")]
        params |= dict(zip(names, (scope, grain, bucket_start, cents, holds), strict=True))
        values.append("(" + ", ".join(f"%({name})s" for name in names) + ")")
    cursor.execute(
        "INSERT INTO ledger_spendcounter (scope, grain, bucket_start, cents, holds) "
        f"VALUES {', '.join(values)} {_COUNTERS_ADD}",
        db_values(params),
    )


def _counter_arrays(buckets: Mapping[Bucket, list[int]]) -> dict[str, list[Any]]:
    """COUNTERS_UPSERT's parameters: one array per column."""
    rows = [(*bucket, *totals) for bucket, totals in buckets.items()]
    columns = ("counter_scopes", "counter_grains", "counter_starts", "counter_cents")
    return dict(zip((*columns, "counter_holds"), map(list, zip(*rows, strict=True)), strict=True))


# --- Values in and out ---------------------------------------------------------------


def db_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as the database stores them: psycopg takes Python values as they are;
    for SQLite, Django stores datetimes as naive UTC text and UUIDs as 32 hex digits."""
    if connection.vendor != "sqlite":
        return dict(params)
    ops = connection.ops
    stored: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, datetime):
            value = ops.adapt_datetimefield_value(value)
        elif isinstance(value, date):
            value = ops.adapt_datefield_value(value)
        elif isinstance(value, uuid.UUID):
            value = value.hex
        elif isinstance(value, Decimal):
            value = str(value)
        stored[name] = value
    return stored


def datetime_of(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # SQLite: naive UTC


def uuid_of(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def json_of(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def cents_of(value: Any) -> int | None:
    if value is None:
        return None
    amount = value if isinstance(value, Decimal) else Decimal(str(value))  # SQLite: text
    return to_cents(amount.quantize(CENT))
