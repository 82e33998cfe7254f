"""No code path may change the ledger, and the database itself refuses to."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from conftest import card_for
from ledger.models import LedgerEntry


@pytest.fixture
def entry(alice, network):
    network.authorize(card_for(alice, "openai"), "5.00")
    return LedgerEntry.objects.get()


def test_the_database_refuses_to_update_a_ledger_entry(entry):
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).update(cap_cents=1)
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        entry.memo = "edited"
        entry.save()
    assert LedgerEntry.objects.get(pk=entry.pk).cap_cents == 500


def test_the_database_refuses_to_delete_a_ledger_entry(entry):
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
        LedgerEntry.objects.filter(pk=entry.pk).delete()
    with (
        pytest.raises(DatabaseError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"DELETE FROM {LedgerEntry._meta.db_table}")
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_truncate_is_refused_on_postgresql(entry, requires_postgres):
    with (
        pytest.raises(DatabaseError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks in the way
        cursor.execute(f"TRUNCATE {LedgerEntry._meta.db_table} CASCADE")
    assert LedgerEntry.objects.count() == 1


def test_no_application_code_updates_or_deletes_ledger_entries():
    """A source check: the only writes to LedgerEntry are inserts."""
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    offenders = []
    for path in root.glob("*/**/*.py"):
        if ".venv" in path.parts or "tests" in path.parts or "migrations" in path.parts:
            continue
        text = path.read_text()
        if re.search(r"LedgerEntry\.objects[^\n]*\.(update|delete|update_or_create)\(", text):
            offenders.append(str(path))
    assert offenders == []
