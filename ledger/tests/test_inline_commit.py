"""An approval's writes and its COMMIT in one round trip (PostgreSQL): when the approval
is its transaction's only write, `decision_sql.approve_and_commit` sends the writes as
one function call with the COMMIT behind it. These tests need real transactions (a
test's own transaction would turn the decision's into a savepoint, which never takes
this way)."""

from __future__ import annotations

import importlib
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, connections
from django.forms.models import model_to_dict
from psycopg.pq import TransactionStatus

from conftest import card_for
from ledger import decision_sql
from ledger.counters import Posting, counter_rows
from ledger.fx import fx_rates_load
from ledger.models import Authorization, LedgerEntry, SpendCounter
from ledger.services import AuthorizationRequest, authorization_decide

pytestmark = pytest.mark.postgres


@pytest.fixture
def inline_commits(monkeypatch):
    """Each inline approval, and whether its transaction was over when it returned."""
    seen: list[bool] = []
    original = decision_sql.approve_and_commit

    def watching(*args, **kwargs):
        found = original(*args, **kwargs)
        status = connection.connection.info.transaction_status
        seen.append(status == TransactionStatus.IDLE)
        return found

    monkeypatch.setattr(decision_sql, "approve_and_commit", watching)
    return seen


def _request(card, network_id: str, **overrides) -> AuthorizationRequest:
    fields = {
        "network_id": network_id,
        "card_id": str(card.pk),
        "amount": Decimal("5.67"),
        "currency": "EUR",
        "merchant_mcc": card.allowed_mccs[0],
        "merchant_name": "Hetzner Online",
        "merchant_network_id": "mid-42",
        "merchant_country": "DE",
        "trace_id": "PR-981",
    }
    return AuthorizationRequest(**{**fields, **overrides})


def test_an_inline_approval_writes_what_the_statement_path_writes(
    transactional_db,
    django_db_serialized_rollback,
    alice,
    inline_commits,
    monkeypatch,
    requires_postgres,
):
    fx_rates_load()
    card = card_for(alice, "aws")
    now = datetime(2026, 11, 28, 12, 30, 15, 123456, tzinfo=UTC)

    inline = authorization_decide(request=_request(card, "inline-1"), now=now).authorization
    assert inline_commits == [True]  # the transaction was over when the call returned
    with monkeypatch.context() as patched:
        patched.setattr(decision_sql, "can_commit_inline", lambda: False)
        nested = authorization_decide(request=_request(card, "nested-1"), now=now).authorization
    assert inline_commits == [True]  # the second took the statement path

    assert inline.decision == "approved"
    assert inline.fx_rate is not None
    assert inline.fx_rate_date is not None
    volatile = {"id", "network_id"}
    assert {k: v for k, v in model_to_dict(inline).items() if k not in volatile} == {
        k: v for k, v in model_to_dict(nested).items() if k not in volatile
    }
    entries = [
        LedgerEntry.objects.values().get(authorization_id=auth.pk) for auth in (inline, nested)
    ]
    volatile = {"id", "authorization_id"}
    inline_entry, nested_entry = (
        {k: v for k, v in entry.items() if k not in volatile} for entry in entries
    )
    assert inline_entry == nested_entry
    assert entries[0]["cap_cents"] == inline.held_cents > 0
    # Every bucket one such hold touches holds both, equally: twice the one hold's.
    one_hold = counter_rows(
        Posting(
            agent_id=inline.agent_id,
            card_id=inline.card_id,
            vendor_id=inline.vendor_id,
            trace_id=inline.trace_id,
            currency="USD",
            time_zone="UTC",
            effective_at=now,
            cents=inline.held_cents,
            is_hold=True,
        )
    )
    assert sorted(SpendCounter.objects.values_list("scope", "grain", "cents", "holds")) == sorted(
        (scope, grain, 2 * cents, 2 * holds) for scope, grain, _, cents, holds in one_hold
    )


def test_an_inline_approval_is_visible_to_others_when_the_answer_is_out(
    transactional_db, django_db_serialized_rollback, alice, inline_commits, requires_postgres
):
    card = card_for(alice, "openai")
    answer = authorization_decide(request=_request(card, "seen-1", currency="USD"))
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
        dbname=settings["NAME"],
    ) as other:  # fmt: skip
        found = other.execute(
            "SELECT decision FROM ledger_authorization WHERE id = %s", [answer.decided.id]
        ).fetchall()
    assert found == [("approved",)]
    assert inline_commits == [True]
    # The connection is usable as Django left it: autocommit again, no transaction.
    assert connection.get_autocommit()
    assert Authorization.objects.filter(network_id="seen-1").count() == 1


def test_racing_replays_of_one_network_id_write_once(
    transactional_db, django_db_serialized_rollback, alice, inline_commits, requires_postgres
):
    card = card_for(alice, "openai")
    request = _request(card, f"dup-{uuid.uuid4().hex}", currency="USD", trace_id="")
    barrier = threading.Barrier(10)

    def decide() -> int:
        try:
            barrier.wait(timeout=30)
            return authorization_decide(request=request).decided.id
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=10) as pool:
        ids = [future.result(timeout=60) for future in [pool.submit(decide) for _ in range(10)]]

    assert len(set(ids)) == 1  # every answer is the first decision
    assert Authorization.objects.filter(network_id=request.network_id).count() == 1
    assert LedgerEntry.objects.filter(authorization_id=ids[0]).count() == 1
    held = Authorization.objects.get(pk=ids[0]).held_cents
    agent_minutes = SpendCounter.objects.filter(scope__startswith="agent:", grain="min")
    assert sum(agent_minutes.values_list("cents", flat=True)) == held  # counted once


def test_the_migration_installs_the_approve_function_the_code_describes(db, requires_postgres):
    migration = importlib.import_module("ledger.migrations.0005_approve_function")
    assert decision_sql.approve_function_sql() == migration.FUNCTION_SQL, (
        "the approval's columns changed: add a migration that installs the function again"
    )
