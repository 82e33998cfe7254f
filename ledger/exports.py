"""The ledger as CSV or JSON lines, streamed: every entry of a filter, oldest first, in
constant memory.

On PostgreSQL the rows come from the server's own `COPY (SELECT ...) TO STDOUT WITH
(FORMAT csv)`, which writes a million rows in seconds; elsewhere (SQLite, the embedded
default) Python's csv module writes them from a chunked iterator. Both give the same
bytes: timestamps in ISO 8601 UTC with microseconds, amounts as the database keeps them,
empty for none. JSON lines hold one object per entry with the same keys: amounts, rates
and ids as strings (never floats), null for none."""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime

from django.db import connection
from django.db.models import F, QuerySet

from ledger.models import LedgerEntry

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


def _copied(named: QuerySet) -> Iterator[bytes]:
    sql, params = named.query.sql_with_params()
    columns = ", ".join(
        f"to_char(q.c_{column} AT TIME ZONE 'UTC', '{PG_ISO_UTC}') AS {column}"
        if column in TIMESTAMPS
        # COPY quotes an empty string (""), Python's csv does not: write both as nothing.
        else f"NULLIF(q.c_{column}::text, '') AS {column}"
        for column in CSV_COLUMNS
    )
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
    """JSON lines of `entries`, one object per entry, the CSV's columns as keys."""
    named = entries.order_by("id").values(
        **{f"c_{column}": F(path) for column, path in CSV_COLUMNS.items()}
    )
    return _in_blocks(
        json.dumps({column: _json(row[f"c_{column}"]) for column in CSV_COLUMNS}) + "\n"
        for row in named.iterator(chunk_size=2000)
    )


def _json(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(ISO_UTC)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
