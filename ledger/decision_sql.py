"""The decision's database work in plain SQL: one statement to lock and load, one insert
per row. The ORM's per-statement cost dominated a decision (about 1.5 ms of CPU per
statement on a 2-core machine); these run on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from psycopg import ClientCursor

from agentwallet.lib.money import to_cents
from ledger.counters import (
    DECISION_SPEND_PARAMS,
    DECISION_SPEND_SQL,
    counters_add_rows,
    db_datetime,
    db_params,
    db_uuid,
)
from ledger.models import (
    Authorization,
    EntryKind,
    LedgerEntry,
    Rail,
    SpendCounter,
    TraceBudget,
)
from wallets.models import Agent

_LOAD = """
SELECT a.id, a.status, a.trace_id, a.trace_expires_at, a.bumps_valid_until,
       c.status, c.expires_at, c.exp_year, c.exp_month, c.allowed_mccs,
       c.allowed_merchant_ids, c.monthly_cap, c.single_use, c.trace_id, c.vendor_id,
       v.slug, v.name,
       p.currency, p.time_zone, p.daily_cap, p.monthly_cap, p.per_trace_cap,
       p.per_authorization_cap, p.velocity_per_hour, p.warning_thresholds, vc.monthly_cap
FROM cards_card c
JOIN wallets_agent a ON a.id = c.agent_id
JOIN policies_policy p ON p.id = a.policy_id
JOIN policies_vendor v ON v.id = c.vendor_id
LEFT JOIN policies_policyvendorcap vc ON vc.policy_id = p.id AND vc.vendor_id = c.vendor_id
WHERE c.id = %s
"""


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the rules need about the card, its agent and policy, read under lock."""

    agent_id: uuid.UUID
    agent_status: str
    agent_trace_id: str
    agent_trace_expires_at: datetime | None
    bumps_valid_until: datetime | None
    card_id: uuid.UUID
    card_status: str
    card_expires_at: datetime | None
    exp_year: int
    exp_month: int
    allowed_mccs: tuple[str, ...]
    allowed_merchant_ids: tuple[str, ...]
    card_cap_cents: int | None
    single_use: bool
    card_trace_id: str
    vendor_id: int
    vendor_slug: str
    vendor_name: str
    currency: str
    time_zone: str
    daily_cents: int
    monthly_cents: int
    per_trace_cents: int | None
    per_authorization_cents: int | None
    velocity_per_hour: int | None
    warning_thresholds: tuple[int, ...]
    vendor_cap_cents: int | None

    def active_trace_at(self, when: datetime) -> str:
        if (
            self.agent_trace_id
            and self.agent_trace_expires_at
            and (self.agent_trace_expires_at > when)
        ):
            return self.agent_trace_id
        return ""


CENT = Decimal("0.01")


def _cents(value: Any) -> int | None:
    if value is None:
        return None
    amount = value if isinstance(value, Decimal) else Decimal(str(value))  # SQLite: float/text
    return to_cents(amount.quantize(CENT))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _dt(value: Any) -> datetime | None:
    return None if value is None else db_datetime(value)


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def lock_and_load(cursor: Any, card_id: str) -> Facts | None:
    """Lock the card's agent row (FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE
    transaction already holds the write lock) and read the facts, in one statement."""
    try:
        card_uuid = uuid.UUID(card_id)
    except ValueError:
        return None
    sql = _LOAD + (" FOR UPDATE OF a" if connection.vendor == "postgresql" else "")
    cursor.execute(sql, [db_uuid(card_uuid)])
    return _facts_of(cursor.fetchone(), card_uuid)


def lock_load_and_read(
    cursor: Any,
    card_id: str,
    *,
    trace_to_lock: str,
    spend_params: dict[str, Any],
    now: datetime,
) -> tuple[Facts | None, tuple[Any, ...]]:
    """PostgreSQL only: `lock_and_load`, the trace's lock (when `trace_to_lock`) and the
    spend read, in one statement: the function of migration ledger 0004 takes the locks
    and then reads, and each statement in it runs with a fresh snapshot, so the read
    sees every decision committed before our lock was granted. The caller guessed the
    spend read's parameters and must check the guess against the facts.

    The facts are read as of the statement's start, before any wait for the lock (as
    the card's row always was): a freeze that commits while we wait applies from the
    next authorization on."""
    card_uuid = uuid.UUID(card_id)
    cursor.execute(
        _LOAD_LOCK_AND_READ, [card_uuid, *_function_args(trace_to_lock, now, spend_params)]
    )
    row = cursor.fetchone()
    if row is None:
        return None, ()
    return _facts_of(row[:-6], card_uuid), row[-6:]


def read_spend_locked(
    cursor: Any,
    agent_id: uuid.UUID,
    *,
    trace_to_lock: str,
    spend_params: dict[str, Any],
    now: datetime,
) -> tuple[Any, ...]:
    """The spend read, for a caller that holds the agent's lock (`lock_and_load`): on
    PostgreSQL through the same function as `lock_load_and_read` (its generic plan; the
    agent's lock is ours already, the trace's it takes), else the plain statement (the
    trace's budget row is made; SQLite's IMMEDIATE transaction serializes writers)."""
    if connection.vendor == "postgresql":
        cursor.execute(_READ_LOCKED, [agent_id, *_function_args(trace_to_lock, now, spend_params)])
    else:
        if trace_to_lock:
            cursor.execute(_TRACE_ROW, db_params([trace_to_lock, now]))
        cursor.execute(DECISION_SPEND_SQL, spend_params)
    return cursor.fetchone()


def _function_args(trace_to_lock: str, now: datetime, spend_params: dict[str, Any]) -> list[Any]:
    """The function's arguments after the agent: the trace to lock, `now`, the spend read's."""
    return [trace_to_lock, now, *(spend_params[name] for name in DECISION_SPEND_PARAMS)]


LOCK_AND_READ_FUNCTION = "ledger_lock_and_read_spend"

_FACT_COLUMNS = ", ".join(f"f{i}" for i in range(len(Facts.__slots__) - 1))  # card_id: ours
_LOAD_LOCK_AND_READ = (
    # The facts are computed first (a materialized CTE), so the function runs once.
    f"WITH f ({_FACT_COLUMNS}) AS MATERIALIZED ({_LOAD}) "
    f"SELECT f.*, s.* FROM f CROSS JOIN LATERAL {LOCK_AND_READ_FUNCTION}(f.f0, %s, %s, "
    + ", ".join(["%s"] * len(DECISION_SPEND_PARAMS))
    + ") AS s"
)

_READ_LOCKED = (
    f"SELECT * FROM {LOCK_AND_READ_FUNCTION}(%s, %s, %s, "
    + ", ".join(["%s"] * len(DECISION_SPEND_PARAMS))
    + ")"
)


def lock_and_read_function_sql() -> str:
    """The function migration ledger 0004 installs; a test holds the two equal, so a
    change to the spend read needs a migration that installs it again.

    Generic plans: a custom plan for the spend read is planned again on every call,
    under the agent's lock, and the planner probes the ends of the just-written
    indexes for its "now"-relative ranges; that cost more than the read (the hot agent's
    throughput rose by a fifth without it). The generic plan uses the same indexes."""
    params = ",\n    ".join(f"p_{name} {kind}" for name, kind in DECISION_SPEND_PARAMS.items())
    spend = re.sub(r"%\((\w+)\)s", r"p_\1", DECISION_SPEND_SQL)
    agents = Agent._meta.db_table
    traces = TraceBudget._meta.db_table
    return f"""CREATE OR REPLACE FUNCTION {LOCK_AND_READ_FUNCTION}(
    p_lock_agent uuid,
    p_trace_to_lock text,
    p_now timestamptz,
    {params}
) RETURNS TABLE (
    spend_day numeric, spend_month numeric, spend_holds numeric,
    spend_card numeric, spend_vendor numeric, spend_trace numeric
) LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $function$
BEGIN
    PERFORM 1 FROM {agents} WHERE id = p_lock_agent FOR UPDATE;
    IF p_trace_to_lock <> '' THEN
        INSERT INTO {traces} (trace_id, created_at) VALUES (p_trace_to_lock, p_now)
            ON CONFLICT (trace_id) DO NOTHING;
        PERFORM 1 FROM {traces} WHERE trace_id = p_trace_to_lock FOR UPDATE;
    END IF;
    RETURN QUERY SELECT q.c1::numeric, q.c2::numeric, q.c3::numeric,
                        q.c4::numeric, q.c5::numeric, q.c6::numeric
    FROM ({spend}) AS q (c1, c2, c3, c4, c5, c6);
END
$function$"""


_TRACE_ROW = (
    f"INSERT INTO {TraceBudget._meta.db_table} (trace_id, created_at) VALUES (%s, %s) "
    "ON CONFLICT (trace_id) DO NOTHING"
)


def _facts_of(row: tuple[Any, ...] | None, card_uuid: uuid.UUID) -> Facts | None:
    if row is None:
        return None
    (
        agent_id,
        agent_status,
        agent_trace,
        agent_trace_expires,
        bumps_until,
        card_status,
        card_expires,
        exp_year,
        exp_month,
        mccs,
        merchant_ids,
        card_cap,
        single_use,
        card_trace,
        vendor_id,
        vendor_slug,
        vendor_name,
        currency,
        time_zone,
        daily,
        monthly,
        per_trace,
        per_auth,
        velocity,
        thresholds,
        vendor_cap,
    ) = row
    return Facts(
        agent_id=_uuid(agent_id),
        agent_status=agent_status,
        agent_trace_id=agent_trace,
        agent_trace_expires_at=_dt(agent_trace_expires),
        bumps_valid_until=_dt(bumps_until),
        card_id=card_uuid,
        card_status=card_status,
        card_expires_at=_dt(card_expires),
        exp_year=exp_year,
        exp_month=exp_month,
        allowed_mccs=tuple(_json(mccs)),
        allowed_merchant_ids=tuple(_json(merchant_ids) or ()),
        card_cap_cents=_cents(card_cap),
        single_use=bool(single_use),
        card_trace_id=card_trace,
        vendor_id=vendor_id,
        vendor_slug=vendor_slug,
        vendor_name=vendor_name,
        currency=currency,
        time_zone=time_zone,
        daily_cents=_cents(daily) or 0,
        monthly_cents=_cents(monthly) or 0,
        per_trace_cents=_cents(per_trace),
        per_authorization_cents=_cents(per_auth),
        velocity_per_hour=velocity,
        warning_thresholds=tuple(_json(thresholds) or ()),
        vendor_cap_cents=_cents(vendor_cap),
    )


def _insert(
    cursor: Any, table: str, values: dict[str, Any], *, on_conflict: str = ""
) -> int | None:
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) {on_conflict} RETURNING id"
    cursor.execute(sql, db_params(list(values.values())))
    row = cursor.fetchone()
    return None if row is None else int(row[0])


def insert_authorization(cursor: Any, row: dict[str, Any]) -> int | None:
    """Insert a decided authorization (its columns by name); None when its network id is
    already taken (a replay that raced us: the caller rolls back and answers the first)."""
    return _insert(
        cursor,
        Authorization._meta.db_table,
        row,
        on_conflict="ON CONFLICT (network_id) DO NOTHING",
    )


def insert_entry(cursor: Any, row: dict[str, Any]) -> int:
    """Insert one ledger entry (its columns by name)."""
    entry_id = _insert(cursor, LedgerEntry._meta.db_table, row)
    if entry_id is None:  # pragma: no cover - an insert without ON CONFLICT returns its row
        raise RuntimeError("ledger insert returned no row")
    return entry_id


# The hold an approval writes: constants, and columns of the authorization row.
_HOLD_CONSTANTS = {
    "kind": EntryKind.HOLD.value,
    "rail": Rail.CARD.value,
    "flag": "",
    "network_txn_id": None,
    "memo": "",
}
_HOLD_FROM_AUTHORIZATION = {
    "agent_id": "agent_id",
    "card_id": "card_id",
    "vendor_id": "vendor_id",
    "authorization_id": "id",
    "trace_id": "trace_id",
    "amount": "amount",
    "amount_currency": "amount_currency",
    "cap_amount": "cap_amount",
    "cap_amount_currency": "cap_amount_currency",
    "cap_cents": "held_cents",
    "fx_rate": "fx_rate",
    "created_at": "decided_at",
    "effective_at": "decided_at",
}


def _hold_row(auth_row: dict[str, Any], auth_id: int) -> dict[str, Any]:
    row = {**auth_row, "id": auth_id}
    return {
        **_HOLD_CONSTANTS,
        **{column: row[source] for column, source in _HOLD_FROM_AUTHORIZATION.items()},
    }


def insert_approval(
    cursor: Any,
    auth_row: dict[str, Any],
    counters: list[tuple[str, str, datetime, int, int]],
) -> int | None:
    """Write an approval: the authorization, its hold entry (the held amount, at the
    decision's time) and the hold's counter buckets. Returns the authorization id, or
    None when the network id is taken (then nothing is written).

    PostgreSQL does it in one call of the function of migration ledger 0005 (data-
    modifying CTEs: the agent's row lock is held for one round trip instead of three);
    SQLite, whose writers are serialized anyway, in three statements."""
    if connection.vendor != "postgresql":
        auth_id = insert_authorization(cursor, auth_row)
        if auth_id is not None:
            insert_entry(cursor, _hold_row(auth_row, auth_id))
            counters_add_rows(cursor, counters)
        return auth_id
    cursor.execute(_APPROVE, _approval_documents(auth_row, counters))
    return _approval_id(cursor.fetchone())


APPROVE_FUNCTION = "ledger_approve"


def approve_function_sql() -> str:
    """The function migration ledger 0005 installs (a test holds the two equal): the
    approval's writes of `insert_approval`, from two JSON documents."""
    counters = SpendCounter._meta.db_table
    auth_columns = [
        field.column for field in Authorization._meta.concrete_fields if field.column != "id"
    ]
    hold_columns = [*_HOLD_CONSTANTS, *_HOLD_FROM_AUTHORIZATION]
    hold_values = [
        *(_sql_literal(value) for value in _HOLD_CONSTANTS.values()),
        *_HOLD_FROM_AUTHORIZATION.values(),
    ]
    columns = ", ".join(auth_columns)
    return f"""CREATE OR REPLACE FUNCTION {APPROVE_FUNCTION}(
    p_authorization jsonb, p_counters jsonb
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $function$
DECLARE
    new_id bigint;
BEGIN
    WITH a AS (
        INSERT INTO {Authorization._meta.db_table} ({columns})
        SELECT {columns}
        FROM jsonb_populate_record(NULL::{Authorization._meta.db_table}, p_authorization)
        ON CONFLICT (network_id) DO NOTHING RETURNING *
    ), e AS (
        INSERT INTO {LedgerEntry._meta.db_table} ({", ".join(hold_columns)})
        SELECT {", ".join(hold_values)} FROM a
    ), c AS (
        INSERT INTO {counters} (scope, grain, bucket_start, cents, holds)
        SELECT v.* FROM jsonb_to_recordset(p_counters)
            AS v (scope text, grain text, bucket_start timestamptz, cents bigint, holds integer),
            a
        ON CONFLICT (scope, grain, bucket_start) DO UPDATE
        SET cents = {counters}.cents + excluded.cents, holds = {counters}.holds + excluded.holds
    )
    SELECT id INTO new_id FROM a;
    RETURN new_id;
END
$function$"""


def _sql_literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str) and "'" not in value:
        return f"'{value}'"
    raise ValueError(f"not a constant for SQL: {value!r}")


def _json_value(value: object) -> object:
    if value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"no JSON form for {value!r}")


def can_commit_inline() -> bool:
    """PostgreSQL, in the outermost atomic block, which commits when it exits (not a
    savepoint inside a caller's transaction, such as a test's)."""
    return (
        connection.vendor == "postgresql"
        and connection.commit_on_exit
        and len(connection.atomic_blocks) == 1
        and not connection.savepoint_ids
    )


_APPROVE = f"SELECT {APPROVE_FUNCTION}(%s::jsonb, %s::jsonb)"
_APPROVE_AND_COMMIT = f"{_APPROVE}; COMMIT"


def _approval_documents(
    auth_row: dict[str, Any], counters: list[tuple[str, str, datetime, int, int]]
) -> list[str]:
    # One JSON document per table instead of ~40 parameters: psycopg's adaptation of
    # each parameter (and of arrays) cost more CPU than PostgreSQL's JSON parsing.
    return [
        json.dumps({column: _json_value(value) for column, value in auth_row.items()}),
        json.dumps(
            [
                {"scope": s, "grain": g, "bucket_start": b.isoformat(), "cents": c, "holds": h}
                for s, g, b, c, h in counters
            ]
        ),
    ]


def approve_and_commit(
    auth_row: dict[str, Any], counters: list[tuple[str, str, datetime, int, int]]
) -> int | None:
    """PostgreSQL: `insert_approval` and COMMIT in one round trip, when the approval is
    the transaction's last write. Returns what insert_approval returns; either way the
    transaction is over (a replay's insert wrote nothing, so committing it is harmless).
    """
    documents = _approval_documents(auth_row, counters)
    # Two statements in one query need client-side binding; the JSON documents are its
    # only values. Wrapped as Django wraps its own cursors (error mapping, query log).
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(ClientCursor(connection.connection)) as cursor:
        cursor.execute(_APPROVE_AND_COMMIT, documents)
        return _approval_id(cursor.fetchone())


def _approval_id(found: tuple[Any, ...] | None) -> int | None:
    """The function's answer: the new authorization's id, NULL when the id was taken."""
    return None if found is None or found[0] is None else int(found[0])
