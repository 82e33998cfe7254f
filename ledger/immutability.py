"""Maintenance mode for the ledger's immutability trigger (see migration 0002).

Only the test suite uses it, to empty the table between tests. No application code
path updates or deletes ledger entries.
"""

from __future__ import annotations

from typing import Any


def set_ledger_maintenance(connection: Any, *, enabled: bool) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT set_config('agentwallet.ledger_maintenance', %s, false)",
                ["on" if enabled else "off"],
            )
        elif connection.vendor == "sqlite":
            cursor.execute("UPDATE ledger_maintenance SET enabled = %s", [1 if enabled else 0])
