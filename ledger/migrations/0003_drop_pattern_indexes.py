"""Drop the LIKE-pattern indexes Django adds beside unique and indexed CharFields on the
ledger's write path. Nothing filters network or trace ids by prefix (admin search uses
icontains, which they cannot serve), and each is one more B-tree insert per approval."""

from django.db import migrations

PATTERN_INDEXES = {
    "ledger_authorization_network_id_f55c62fc_like": ("ledger_authorization", "network_id"),
    "ledger_ledgerentry_network_txn_id_16ce962f_like": ("ledger_ledgerentry", "network_txn_id"),
    "ledger_ledgerentry_trace_id_d3b1b437_like": ("ledger_ledgerentry", "trace_id"),
}


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # only PostgreSQL gets these indexes
    for name in PATTERN_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (table, column) in PATTERN_INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column} varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [("ledger", "0002_ledger_entries_immutable")]

    operations = [migrations.RunPython(drop, create)]
