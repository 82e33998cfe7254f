"""The spend read that travels with the lock (PostgreSQL): a decision guesses its spend
read's parameters from the card's facts it saw last, sends the read in the lock's round
trip, and keeps it only when the facts read under the lock give the same parameters."""

from __future__ import annotations

import importlib
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from conftest import card_for
from ledger import decision_sql
from ledger.counters import Posting, counter_rows, counters_add_rows
from ledger.services import AuthorizationRequest, authorization_decide
from wallets.services import agent_trace_set

pytestmark = pytest.mark.postgres


@pytest.fixture
def calls(monkeypatch):
    """How often the decision took each way to lock and load."""
    counted = {"guessed": 0, "unguessed": 0, "reread": 0}

    def counting(name, function):
        def wrapper(*args, **kwargs):
            counted[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(
        decision_sql, "lock_load_and_read", counting("guessed", decision_sql.lock_load_and_read)
    )
    monkeypatch.setattr(
        decision_sql, "lock_and_load", counting("unguessed", decision_sql.lock_and_load)
    )
    monkeypatch.setattr(
        decision_sql, "read_spend_locked", counting("reread", decision_sql.read_spend_locked)
    )
    return counted


def _decide(card, amount: str, trace_id: str = ""):
    return authorization_decide(
        request=AuthorizationRequest(
            network_id=f"g_{uuid.uuid4().hex}",
            card_id=str(card.pk),
            amount=Decimal(amount),
            currency="USD",
            merchant_mcc=card.allowed_mccs[0],
            trace_id=trace_id,
        )
    ).authorization


def test_the_first_decision_on_a_card_reads_unguessed_then_the_guess_is_used(
    alice, calls, requires_postgres
):
    card = card_for(alice, "openai")
    assert _decide(card, "1.00").decision == "approved"
    assert calls == {"guessed": 0, "unguessed": 1, "reread": 1}
    assert _decide(card, "2.00").decision == "approved"
    assert calls == {"guessed": 1, "unguessed": 1, "reread": 1}  # one round trip
    # The guessed read counted the first two: $497 more passes the $500 day, $497.01 not.
    assert _decide(card, "497.01").reason == "daily_cap_exceeded"
    assert _decide(card, "497.00").decision == "approved"
    assert calls["reread"] == 1


def test_a_guessed_read_sees_spend_committed_while_it_waited_for_the_lock(
    transactional_db, django_db_serialized_rollback, alice, calls, requires_postgres
):
    card = card_for(alice, "aws")
    assert _decide(card, "1.00").decision == "approved"  # the card's facts are now seen
    settings = connection.settings_dict
    other = psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
        dbname=settings["NAME"], autocommit=False,
    )  # fmt: skip
    result: dict[str, object] = {}

    def decide() -> None:
        try:
            result["auth"] = _decide(card, "150.00")
        finally:
            connections.close_all()

    try:
        with other.cursor() as cursor:
            # Another transaction holds the agent's lock and spends $400 of the day.
            cursor.execute(
                "SELECT id FROM wallets_agent WHERE id = %s FOR UPDATE", [alice.agent.pk]
            )
            rows = counter_rows(
                Posting(
                    agent_id=alice.agent.pk,
                    card_id=card.pk,
                    vendor_id=card.vendor_id,
                    trace_id="",
                    currency="USD",
                    time_zone="UTC",
                    effective_at=timezone.now(),
                    cents=40000,
                    is_hold=True,
                )
            )
            counters_add_rows(cursor, rows)
            worker = threading.Thread(target=decide)
            worker.start()
            time.sleep(0.5)
            assert worker.is_alive(), "the decision did not wait for the agent's lock"
        other.commit()
        worker.join(timeout=30)
    finally:
        other.close()

    assert calls["guessed"] == 1
    # $1 + $400 + $150 > $500: the read ran after the lock was granted, not before.
    assert result["auth"].reason == "daily_cap_exceeded"


def test_a_stale_guess_is_read_again(alice, bob, calls, requires_postgres):
    card = card_for(alice, "openai")
    assert _decide(card, "1.00").decision == "approved"  # seen: no trace context
    # The trace fills up to $19.50 of its $20 cap by another agent.
    assert _decide(card_for(bob, "openai"), "19.50", trace_id="PR-7").decision == "approved"
    agent_trace_set(agent=alice.agent, trace_id="PR-7")
    calls.update(guessed=0, unguessed=0, reread=0)

    declined = _decide(card, "1.00")

    assert (declined.reason, declined.trace_id) == ("trace_cap_exceeded", "PR-7")
    assert calls == {"guessed": 1, "unguessed": 0, "reread": 1}
    assert _decide(card, "0.50").decision == "approved"  # now guessed right
    assert calls == {"guessed": 2, "unguessed": 0, "reread": 1}


def test_a_guess_that_locked_another_trace_starts_again_unguessed(
    alice, bob, calls, requires_postgres
):
    card = card_for(alice, "openai")
    agent_trace_set(agent=alice.agent, trace_id="PR-1")
    assert _decide(card, "1.00").trace_id == "PR-1"  # seen: trace PR-1, which has a cap
    assert _decide(card_for(bob, "openai"), "19.50", trace_id="PR-2").decision == "approved"
    agent_trace_set(agent=alice.agent, trace_id="PR-2")
    calls.update(guessed=0, unguessed=0, reread=0)

    declined = _decide(card, "1.00")

    # The guess locked PR-1's budget; taking PR-2's too could deadlock, so it rolled
    # back and decided again without a guess.
    assert (declined.reason, declined.trace_id) == ("trace_cap_exceeded", "PR-2")
    assert calls == {"guessed": 1, "unguessed": 1, "reread": 1}


def test_the_migration_installs_the_function_the_code_describes(db, requires_postgres):
    migration = importlib.import_module("ledger.migrations.0004_lock_and_read_function")
    assert decision_sql.lock_and_read_function_sql() == migration.FUNCTION_SQL, (
        "the spend read changed: add a migration that installs the function again"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT prosrc, proconfig FROM pg_proc WHERE proname = %s",
            [decision_sql.LOCK_AND_READ_FUNCTION],
        )
        source, config = cursor.fetchone()
    # Generic plans: no planning (and no probing of fresh index ends) under the lock.
    assert config == ["plan_cache_mode=force_generic_plan"]
    assert "FOR UPDATE" in source
    assert "ledger_spendcounter" in source
