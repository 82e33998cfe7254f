"""Ledger entries are immutable: the database itself refuses UPDATE and DELETE.

The one way around it is maintenance mode (`ledger/immutability.py`), which only the
test suite uses, to empty the table between tests; no application code path sets it.
"""

from django.db import migrations

POSTGRES_UP = """
CREATE OR REPLACE FUNCTION ledger_entry_immutable() RETURNS trigger AS $$
BEGIN
    IF current_setting('agentwallet.ledger_maintenance', true) = 'on' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;  -- UPDATE; ignored for TRUNCATE (statement level)
    END IF;
    RAISE EXCEPTION 'ledger entries are immutable (% refused)', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER ledger_entry_no_update_or_delete
    BEFORE UPDATE OR DELETE ON ledger_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_immutable();
CREATE TRIGGER ledger_entry_no_truncate
    BEFORE TRUNCATE ON ledger_ledgerentry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entry_immutable();
"""
POSTGRES_DOWN = """
DROP TRIGGER IF EXISTS ledger_entry_no_truncate ON ledger_ledgerentry;
DROP TRIGGER IF EXISTS ledger_entry_no_update_or_delete ON ledger_ledgerentry;
DROP FUNCTION IF EXISTS ledger_entry_immutable();
"""
# SQLite has no session settings: maintenance mode is a row in a table that is not a
# Django model (so `flush` leaves it alone).
SQLITE_UP = [
    "CREATE TABLE ledger_maintenance (enabled INTEGER NOT NULL DEFAULT 0);",
    "INSERT INTO ledger_maintenance (enabled) VALUES (0);",
    """CREATE TRIGGER ledger_entry_no_update BEFORE UPDATE ON ledger_ledgerentry
       WHEN (SELECT enabled FROM ledger_maintenance) = 0
       BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable (UPDATE refused)'); END;""",
    """CREATE TRIGGER ledger_entry_no_delete BEFORE DELETE ON ledger_ledgerentry
       WHEN (SELECT enabled FROM ledger_maintenance) = 0
       BEGIN SELECT RAISE(ABORT, 'ledger entries are immutable (DELETE refused)'); END;""",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS ledger_entry_no_update;",
    "DROP TRIGGER IF EXISTS ledger_entry_no_delete;",
    "DROP TABLE IF EXISTS ledger_maintenance;",
]


def up(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_UP, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_UP:
            schema_editor.execute(statement)


def down(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(POSTGRES_DOWN, params=None)
    elif schema_editor.connection.vendor == "sqlite":
        for statement in SQLITE_DOWN:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]
    operations = [migrations.RunPython(up, down)]
