"""Drop the PL/pgSQL functions of migrations 0004 and 0005: the decision now sends its
statements itself (ledger/sql.py), so a change to an authorization's columns or to the
spend read needs no migration of a function body. Going back installs them again."""

from importlib import import_module

from django.db import migrations

FUNCTIONS = {
    "ledger_lock_and_read_spend": "ledger.migrations.0004_lock_and_read_function",
    "ledger_approve": "ledger.migrations.0005_approve_function",
}


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # only PostgreSQL had them
    for name in FUNCTIONS:
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {name}")


def reinstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for module in FUNCTIONS.values():
        schema_editor.execute(import_module(module).FUNCTION_SQL)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_month_counter_zone")]

    operations = [migrations.RunPython(drop, reinstall)]
