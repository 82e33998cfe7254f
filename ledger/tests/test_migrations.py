"""What the ledger's migrations leave in the database."""

from __future__ import annotations

from django.db import connection


def test_no_plpgsql_function_of_the_old_decision_path_is_left(db, requires_postgres):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname FROM pg_proc WHERE proname IN "
            "('ledger_lock_and_read_spend', 'ledger_approve')"
        )
        assert cursor.fetchall() == []
        # The immutability trigger's function stays (migration 0002).
        cursor.execute("SELECT proname FROM pg_proc WHERE proname = 'ledger_entry_immutable'")
        assert cursor.fetchall() == [("ledger_entry_immutable",)]
