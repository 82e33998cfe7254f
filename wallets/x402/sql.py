"""The x402 payment's read and write, in plain SQL, as the card decision's (ledger/sql.py).

They run while the payment holds its agent's row lock, so what they cost is how long
the agent's other payments and card decisions wait: the ORM built the read (with the
payee's vendor) in about four times the time PostgreSQL took to answer it, and the write
is one statement instead of three (bench/x402.py, bench/README.md). Only names are
written into the SQL; every value is a parameter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, models

from ledger import sql as ledger_sql
from ledger.models import LedgerEntry
from wallets.models import X402Payment

# What a payment reads about its agent: each column by the name the code knows it by.
_PAYER_COLUMNS = {
    "agent_id": "a.id",
    "agent_status": "a.status",
    "agent_trace_id": "a.trace_id",
    "agent_trace_expires_at": "a.trace_expires_at",
    "bumps_valid_until": "a.bumps_valid_until",
    "currency": "p.currency",
    "daily_cap": "p.daily_cap",
    "monthly_cap": "p.monthly_cap",
    "per_trace_cap": "p.per_trace_cap",
    "x402_allowed": "p.x402_allowed",
    "x402_per_call_cap": "p.x402_per_call_cap",
    "x402_payees": "p.x402_payees",
    "month_time_zone": "COALESCE(z.time_zone, p.time_zone)",
    "wallet_address": "w.address",
    "wallet_status": "w.status",
    "wallet_key": "w.private_key_encrypted",
    # The payment this idempotency key made already, if any.
    "paid_with_key": (
        "(SELECT x.id FROM wallets_x402payment x "
        "WHERE x.agent_id = a.id AND x.idempotency_key = %(idempotency_key)s)"
    ),
    "vendor_id": "payee.id",
    "vendor_slug": "payee.slug",
    "vendor_name": "payee.name",
    "vendor_cap": "vc.monthly_cap",
}
# The vendor paid at this address over x402 (Vendor.x402_pay_to), in each database's
# JSON functions.
_PAYEE_MATCH = {
    "postgresql": "EXISTS (SELECT 1 FROM jsonb_array_elements_text(v.x402_pay_to) AS e(address) "
    "WHERE lower(e.address) = %(pay_to)s)",
    "sqlite": "EXISTS (SELECT 1 FROM json_each(v.x402_pay_to) AS e "
    "WHERE lower(e.value) = %(pay_to)s)",
}
_PAYER_FACTS = """
WITH payee AS (
    SELECT v.id, v.slug, v.name FROM policies_vendor v WHERE {payee_match} ORDER BY v.id LIMIT 1
)
SELECT {columns}
FROM wallets_agent a
JOIN policies_policy p ON p.id = a.policy_id
LEFT JOIN wallets_usdcwallet w ON w.agent_id = a.id
LEFT JOIN ledger_monthcounterzone z ON z.agent_id = a.id
LEFT JOIN payee ON 1 = 1
LEFT JOIN policies_policyvendorcap vc ON vc.policy_id = p.id AND vc.vendor_id = payee.id
WHERE a.id = %(agent_id)s
"""


@dataclass(frozen=True)
class PayerFacts:
    """What the x402 rules need about the agent, its policy, its wallet and the payee.
    Caps in cents of the policy's currency; None where the policy sets none."""

    agent_id: uuid.UUID
    agent_status: str
    agent_trace_id: str
    agent_trace_expires_at: datetime | None
    bumps_valid_until: datetime | None
    currency: str
    daily_cap_cents: int
    monthly_cap_cents: int
    per_trace_cap_cents: int | None
    x402_allowed: bool
    per_call_cap_cents: int | None
    payees: tuple[str, ...]  # lower case
    month_time_zone: str
    wallet_address: str | None  # None: the agent has no wallet yet
    wallet_status: str | None
    wallet_key: str | None  # sealed (wallets.x402.keys)
    paid_with_key: uuid.UUID | None
    vendor_id: int | None
    vendor_slug: str
    vendor_name: str
    vendor_cap_cents: int | None

    def active_trace_at(self, when: datetime) -> str:
        expires = self.agent_trace_expires_at
        return self.agent_trace_id if expires is not None and expires > when else ""


def payer_facts_lock(
    cursor: Any, *, agent_id: uuid.UUID, idempotency_key: str, pay_to: str
) -> PayerFacts | None:
    """Load the payer's facts and lock its agent's row (FOR UPDATE on PostgreSQL; on
    SQLite the IMMEDIATE transaction holds the write lock already). None: no such agent."""
    vendor = connection.vendor
    query = _PAYER_FACTS.format(
        payee_match=_PAYEE_MATCH[vendor],
        columns=", ".join(f"{source} AS {name}" for name, source in _PAYER_COLUMNS.items()),
    )
    if vendor == "postgresql":
        query += " FOR UPDATE OF a"
    params = {"agent_id": agent_id, "idempotency_key": idempotency_key, "pay_to": pay_to.lower()}
    cursor.execute(query, ledger_sql.db_values(params))
    row = cursor.fetchone()
    if row is None:
        return None
    got = dict(zip(_PAYER_COLUMNS, row, strict=True))
    cents = ledger_sql.cents_of
    return PayerFacts(
        agent_id=ledger_sql.uuid_of(got["agent_id"]),
        agent_status=got["agent_status"],
        agent_trace_id=got["agent_trace_id"],
        agent_trace_expires_at=ledger_sql.datetime_of(got["agent_trace_expires_at"]),
        bumps_valid_until=ledger_sql.datetime_of(got["bumps_valid_until"]),
        currency=got["currency"],
        daily_cap_cents=cents(got["daily_cap"]) or 0,
        monthly_cap_cents=cents(got["monthly_cap"]) or 0,
        per_trace_cap_cents=cents(got["per_trace_cap"]),
        x402_allowed=bool(got["x402_allowed"]),
        per_call_cap_cents=cents(got["x402_per_call_cap"]),
        payees=tuple(str(p).lower() for p in ledger_sql.json_of(got["x402_payees"]) or ()),
        month_time_zone=got["month_time_zone"],
        wallet_address=got["wallet_address"],
        wallet_status=got["wallet_status"],
        wallet_key=got["wallet_key"],
        paid_with_key=None
        if got["paid_with_key"] is None
        else ledger_sql.uuid_of(got["paid_with_key"]),
        vendor_id=got["vendor_id"],
        vendor_slug=got["vendor_slug"] or "",
        vendor_name=got["vendor_name"] or "",
        vendor_cap_cents=cents(got["vendor_cap"]),
    )


# --- The write: the ledger entry, its counters and the payment, in one statement ----


# Every column of each row, by its field: the entry's id is the database's, the payment's
# our UUID, its entry_id the new entry's.
_ENTRY_FIELDS = tuple(f for f in LedgerEntry._meta.concrete_fields if not f.primary_key)
_PAYMENT_FIELDS = tuple(f for f in X402Payment._meta.concrete_fields if f.column != "entry_id")
# PostgreSQL: the entry, its counter buckets and the payment (pointing at the entry) in
# one round trip, with data-modifying CTEs.
PAYMENT_INSERT = (
    f"WITH new_entry AS (INSERT INTO ledger_ledgerentry "
    f"({', '.join(f.column for f in _ENTRY_FIELDS)}) "
    f"VALUES ({', '.join(f'%(e_{f.column})s' for f in _ENTRY_FIELDS)}) RETURNING id), "
    f"new_counters AS ({ledger_sql.COUNTERS_UPSERT}) "
    f"INSERT INTO wallets_x402payment ({', '.join(f.column for f in _PAYMENT_FIELDS)}, entry_id) "
    f"SELECT {', '.join(f'%(p_{f.column})s' for f in _PAYMENT_FIELDS)}, id FROM new_entry "
    "RETURNING entry_id"
)


def payment_insert(
    cursor: Any, entry: LedgerEntry, payment: X402Payment, posting: ledger_sql.Posting
) -> int:
    """Write the approved payment's ledger entry, its spend counters and the payment row
    (PostgreSQL only; SQLite, whose writers are serialized anyway, saves them with the
    ORM). Sets and returns the entry's id."""
    params = {f"e_{f.column}": _db_value(f, entry) for f in _ENTRY_FIELDS}
    params |= {f"p_{f.column}": _db_value(f, payment) for f in _PAYMENT_FIELDS}
    params |= ledger_sql.counters_upsert_params([posting])
    cursor.execute(PAYMENT_INSERT, params)
    entry.pk = int(cursor.fetchone()[0])
    payment.entry = entry
    return entry.pk


def _db_value(field: models.Field, instance: models.Model) -> Any:
    """The value the ORM would write for this field (Field's public save API)."""
    return field.get_db_prep_save(field.pre_save(instance, add=True), connection=connection)
