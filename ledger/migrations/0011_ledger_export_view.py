"""The `ledger_export` view (PostgreSQL): the export's columns over the ledger, for
finance to join against their own tables (docs/api.md, "Joining the ledger in SQL").
Read-only: a view over joins is not updatable, and the ledger under it refuses UPDATE
and DELETE. On SQLite, the embedded default, there is none. A later migration that
changes the type of a column the view reads must drop and create it again around that
change (PostgreSQL refuses to alter a column a view uses)."""

from __future__ import annotations

from django.db import migrations

# The export's columns (ledger/exports.py, CSV_COLUMNS) in its order, typed (timestamps,
# numerics) and with "none" as NULL, then the agent's and card's ids to join on.
CREATE_VIEW = """
CREATE VIEW ledger_export AS
SELECT
    e.id,
    e.created_at,
    e.effective_at,
    e.kind,
    e.rail,
    NULLIF(e.flag, '') AS flag,
    a.name AS agent,
    c.last4 AS card_last4,
    v.slug AS vendor,
    NULLIF(e.trace_id, '') AS trace_id,
    e.amount,
    e.amount_currency AS currency,
    e.cap_amount,
    e.cap_amount_currency AS cap_currency,
    e.fx_rate,
    au.fx_rate_date,
    au.network_id AS authorization_id,
    e.network_txn_id AS network_event_id,
    e.agent_id,
    e.card_id
FROM ledger_ledgerentry e
JOIN wallets_agent a ON a.id = e.agent_id
LEFT JOIN cards_card c ON c.id = e.card_id
LEFT JOIN policies_vendor v ON v.id = e.vendor_id
LEFT JOIN ledger_authorization au ON au.id = e.authorization_id
"""


def create_view(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_VIEW)


def drop_view(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP VIEW IF EXISTS ledger_export")


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0010_spend_rollups"),
        ("wallets", "0003_team_leads"),
        ("cards", "0003_cardevent_cap_changed"),
        ("policies", "0005_vendor_merchant_locks"),
    ]

    operations = [migrations.RunPython(create_view, drop_view)]
