"""The ledger as CSV or JSON lines, streamed: every entry of a filter, oldest first, in
constant memory.

On PostgreSQL the rows come from the server's own `COPY (SELECT ...) TO STDOUT WITH
(FORMAT csv)`, which writes a million rows in seconds; elsewhere (SQLite, the embedded
default) Python's csv module writes them from a chunked iterator. Both give the same
bytes: timestamps in ISO 8601 UTC with microseconds, amounts as the database keeps them,
empty for none. JSON lines hold one object per entry with the same keys: amounts, rates
and ids as strings (never floats), null for none.

`ledger_groups` streams sums instead, one row per group of the `group_by` keys and cap
currency: the net spent, the captured and the refunded amounts, the declined attempts
(declines write no entry: they are the declined authorizations of the same filter), and
the first and last time. The two grouped reads are one UNION ALL ordered by the keys, so
a group's rows arrive together and are summed as they stream."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db import connection
from django.db.models import (
    BigIntegerField,
    CharField,
    Count,
    F,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, TruncDate

from agentwallet.lib.money import from_cents
from ledger.models import Authorization, EntryKind, LedgerEntry

# The export's columns, in order, and where each comes from.
CSV_COLUMNS = {
    "id": "id",
    "created_at": "created_at",
    "effective_at": "effective_at",
    "kind": "kind",
    "rail": "rail",
    "flag": "flag",
    "agent": "agent__name",
    "card_last4": "card__last4",
    "vendor": "vendor__slug",
    "trace_id": "trace_id",
    "amount": "amount",
    "currency": "amount_currency",
    "cap_amount": "cap_amount",
    "cap_currency": "cap_amount_currency",
    "fx_rate": "fx_rate",
    # The day of the rates the authorization converted at (none without a conversion).
    "fx_rate_date": "authorization__fx_rate_date",
    "authorization_id": "authorization__network_id",
    "network_event_id": "network_txn_id",
}
TIMESTAMPS = ("created_at", "effective_at")
ISO_UTC = "%Y-%m-%dT%H:%M:%S.%f+00:00"
PG_ISO_UTC = 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'
CHUNK_BYTES = 64 * 1024  # COPY hands over one row at a time: send them in blocks


def ledger_csv(entries: QuerySet[LedgerEntry]) -> Iterator[bytes]:
    """The CSV of `entries` (a filtered queryset), header first, as blocks of bytes."""
    # Aliases of our own, so the outer SELECT can name each column whatever the joins.
    named = entries.order_by("id").values(
        **{f"c_{column}": F(path) for column, path in CSV_COLUMNS.items()}
    )
    if connection.vendor == "postgresql":
        return _copied(named)
    return _written(named)


def _pg_text(column: str) -> str:
    """A column of the named query as text the way the export writes it: timestamps in
    ISO 8601 UTC, and empty as NULL (COPY quotes an empty string, Python's csv does not:
    both write nothing; JSON lines, null)."""
    if column in TIMESTAMPS:
        return f"to_char(q.c_{column} AT TIME ZONE 'UTC', '{PG_ISO_UTC}')"
    return f"NULLIF(q.c_{column}::text, '')"


def _copied(named: QuerySet) -> Iterator[bytes]:
    sql, params = named.query.sql_with_params()
    columns = ", ".join(f"{_pg_text(column)} AS {column}" for column in CSV_COLUMNS)
    # Our constant column list around Django's compiled SQL; the filter's values stay
    # parameters (psycopg binds them client-side, as COPY takes none).
    statement = f"COPY (SELECT {columns} FROM ({sql}) AS q) TO STDOUT WITH (FORMAT csv, HEADER)"  # noqa: S608
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(statement, params) as copy:
        block = bytearray()
        for data in copy:
            block += data
            if len(block) >= CHUNK_BYTES:
                yield bytes(block)
                block.clear()
        if block:
            yield bytes(block)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _written(named: QuerySet) -> Iterator[bytes]:
    writer = csv.writer(_Echo(), lineterminator="\n")
    lines = (
        writer.writerow([_text(row[f"c_{column}"]) for column in CSV_COLUMNS])
        for row in named.iterator(chunk_size=2000)
    )
    return _in_blocks(itertools.chain([writer.writerow(CSV_COLUMNS)], lines))


def _in_blocks(lines: Iterator[str]) -> Iterator[bytes]:
    """The lines joined into blocks of about CHUNK_BYTES."""
    block: list[str] = []
    size = 0
    for line in lines:
        block.append(line)
        size += len(line)
        if size >= CHUNK_BYTES:
            yield "".join(block).encode()
            block, size = [], 0
    if block:
        yield "".join(block).encode()


def _text(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(ISO_UTC)
    return value


def ledger_jsonl(entries: QuerySet[LedgerEntry]) -> Iterator[bytes]:
    """JSON lines of `entries`, one object per entry, the CSV's columns as keys. On
    PostgreSQL the server builds each object (json_build_object: the same objects, with
    its own spacing) and the rows stream in single-row mode; elsewhere Python writes them."""
    named = entries.order_by("id").values(
        **{f"c_{column}": F(path) for column, path in CSV_COLUMNS.items()}
    )
    if connection.vendor == "postgresql":
        return _jsonl_streamed(named)
    return _in_blocks(
        json.dumps({column: _json(row[f"c_{column}"]) for column in CSV_COLUMNS}) + "\n"
        for row in named.iterator(chunk_size=2000)
    )


def _jsonl_streamed(named: QuerySet) -> Iterator[bytes]:
    sql, params = named.query.sql_with_params()
    pairs = ", ".join(f"'{column}', {_pg_text(column)}" for column in CSV_COLUMNS)
    # Our constant column list around Django's compiled SQL, as for COPY above.
    statement = f"SELECT json_build_object({pairs})::text FROM ({sql}) AS q"  # noqa: S608
    connection.ensure_connection()
    with connection.connection.cursor() as cursor:
        yield from _in_blocks(row[0] + "\n" for row in cursor.stream(statement, params))


def _json(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(ISO_UTC)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# group_by's keys: the columns each gives, and where a column comes from in the entries
# and in the declined authorizations.
GROUP_KEYS: dict[str, dict[str, tuple[object, object]]] = {
    "trace": {"trace_id": ("trace_id", "trace_id")},
    "vendor": {"vendor": ("vendor__slug", "vendor__slug")},
    "agent": {"agent_id": ("agent_id", "agent_id"), "agent": ("agent__name", "agent__name")},
    "card": {"card_id": ("card_id", "card_id"), "card_last4": ("card__last4", "card__last4")},
    "rail": {"rail": ("rail", Value("card", output_field=CharField()))},
    "day": {"day": (TruncDate("effective_at", tzinfo=UTC), TruncDate("decided_at", tzinfo=UTC))},
}
GROUP_FIGURES = (
    "cap_currency",
    "spent",
    "captured",
    "refunded",
    "declined_attempts",
    "first_at",
    "last_at",
)


def group_columns(group_by: list[str]) -> list[str]:
    return [column for key in group_by for column in GROUP_KEYS[key]] + list(GROUP_FIGURES)


def ledger_groups(
    entries: QuerySet[LedgerEntry], declines: QuerySet[Authorization], group_by: list[str]
) -> Iterator[dict[str, object]]:
    """One dict per group of `group_by` (GROUP_KEYS) and cap currency, in key order."""
    keys = [column for key in group_by for column in GROUP_KEYS[key]]

    def named(side: int) -> dict[str, object]:
        paths = {c: path for key in group_by for c, path in GROUP_KEYS[key].items()}
        return {f"g_{column}": _expression(paths[column][side]) for column in keys}

    zero = Value(0, output_field=BigIntegerField())
    spent = entries.values(**named(0), g_currency=F("cap_amount_currency")).annotate(
        g_spent=Sum("cap_cents"),
        g_captured=Coalesce(Sum("cap_cents", filter=Q(kind=EntryKind.CAPTURE)), zero),
        g_refunded=Coalesce(Sum("cap_cents", filter=Q(kind=EntryKind.REFUND)), zero),
        g_declined=zero,
        g_first=Min("effective_at"),
        g_last=Max("effective_at"),
    )
    declined = declines.values(**named(1), g_currency=F("agent__policy__currency")).annotate(
        g_spent=zero,
        g_captured=zero,
        g_refunded=zero,
        g_declined=Count("id"),
        g_first=Min("decided_at"),
        g_last=Max("decided_at"),
    )
    order = [f"g_{column}" for column in keys] + ["g_currency"]
    names = [*order, "g_spent", "g_captured", "g_refunded", "g_declined", "g_first", "g_last"]
    rows = spent.order_by().union(declined.order_by(), all=True).order_by(*order)
    width = len(order)
    current: list | None = None
    for named_row in rows.iterator(chunk_size=2000):
        row = tuple(named_row[name] for name in names)
        if current is not None and tuple(current[:width]) == row[:width]:
            _add(current, row, width)
            continue
        if current is not None:
            yield _group_row(keys, current)
        current = list(row)
    if current is not None:
        yield _group_row(keys, current)


def _expression(path: object) -> object:
    return F(path) if isinstance(path, str) else path


def _add(current: list, row: tuple, width: int) -> None:
    spent, captured, refunded, declined, first, last = row[width:]
    current[width] += spent
    current[width + 1] += captured
    current[width + 2] += refunded
    current[width + 3] += declined
    current[width + 4] = min(current[width + 4], first)
    current[width + 5] = max(current[width + 5], last)


def _group_row(keys: list[str], row: list) -> dict[str, object]:
    width = len(keys) + 1
    spent, captured, refunded, declined, first, last = row[width:]
    return {
        **dict(zip(keys, row[: len(keys)], strict=True)),
        "cap_currency": row[len(keys)],
        "spent": from_cents(int(spent)),
        "captured": from_cents(int(captured)),
        "refunded": from_cents(-int(refunded)),
        "declined_attempts": int(declined),
        "first_at": first,
        "last_at": last,
    }


def groups_csv(columns: list[str], rows: Iterator[dict[str, object]]) -> Iterator[bytes]:
    writer = csv.writer(_Echo(), lineterminator="\n")
    lines = (writer.writerow([_text(row[column]) for column in columns]) for row in rows)
    return _in_blocks(itertools.chain([writer.writerow(columns)], lines))


def groups_jsonl(columns: list[str], rows: Iterator[dict[str, object]]) -> Iterator[bytes]:
    # The counts are JSON integers; money and everything else strings, as for entries.
    return _in_blocks(
        json.dumps(
            {
                column: row[column] if isinstance(row[column], int) else _json(row[column])
                for column in columns
            }
        )
        + "\n"
        for row in rows
    )


def parse_group_by(value: str | None) -> list[str]:
    """`trace,vendor`: the keys in the order given ([] for none); ValueError otherwise."""
    if value is None:
        return []
    keys = value.split(",")
    if all(key in GROUP_KEYS for key in keys) and len(set(keys)) == len(keys):
        return keys
    raise ValueError(f"Give distinct keys among {', '.join(GROUP_KEYS)}, comma-separated.")


@dataclass
class LedgerExport:
    """What an export writes: the filtered entries, or with `group_by` their sums per
    group with the declined attempts of the same filter."""

    entries: QuerySet[LedgerEntry]
    declines: QuerySet[Authorization] = field(default_factory=Authorization.objects.none)
    group_by: list[str] = field(default_factory=list)

    def _groups(self) -> Iterator[dict[str, object]]:
        return ledger_groups(self.entries, self.declines, self.group_by)

    def csv(self) -> Iterator[bytes]:
        if not self.group_by:
            return ledger_csv(self.entries)
        return groups_csv(group_columns(self.group_by), self._groups())

    def jsonl(self) -> Iterator[bytes]:
        if not self.group_by:
            return ledger_jsonl(self.entries)
        return groups_jsonl(group_columns(self.group_by), self._groups())
