"""Correctness under concurrency, on PostgreSQL: racing authorizations never overspend."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, connections
from django.utils import timezone

from cards.services import card_freeze
from conftest import card_for, merchant_of
from ledger import sql
from ledger.models import Authorization, LedgerEntry, SpendCounter
from ledger.selectors import agent_spend_now
from ledger.services import AuthorizationRequest, authorization_capture, authorization_decide
from wallets.actors import Actor
from wallets.models import Agent

pytestmark = pytest.mark.postgres

THREADS = 50
ROUNDS = 20


def _decide_in_thread(card, amount: str, barrier: threading.Barrier, trace_id: str = "") -> str:
    try:
        barrier.wait(timeout=30)
        return authorization_decide(
            request=AuthorizationRequest(
                network_id=f"race_{uuid.uuid4().hex}",
                card_id=str(card.pk),
                amount=Decimal(amount),
                currency="USD",
                merchant_mcc=card.allowed_mccs[0],
                **merchant_of(card),
                trace_id=trace_id,
            )
        ).authorization.decision
    finally:
        connections.close_all()  # this thread's own connection


def _race(cards: list, amount: str, trace_id: str = "") -> list[str]:
    barrier = threading.Barrier(THREADS)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [
            pool.submit(_decide_in_thread, cards[i % len(cards)], amount, barrier, trace_id)
            for i in range(THREADS)
        ]
        return [future.result(timeout=120) for future in futures]


def _spent_today(provisioned) -> int:
    agent = Agent.objects.select_related("policy").get(pk=provisioned.agent.pk)
    return agent_spend_now(agent=agent, now=timezone.now()).day_cents


def _request(card, amount: str, network_id: str | None = None) -> AuthorizationRequest:
    return AuthorizationRequest(
        network_id=network_id or f"n_{uuid.uuid4().hex}",
        card_id=str(card.pk),
        amount=Decimal(amount),
        currency="USD",
        merchant_mcc=card.allowed_mccs[0],
        **merchant_of(card),
    )


def _other_connection() -> psycopg.Connection:
    settings = connection.settings_dict
    return psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"],
        dbname=settings["NAME"], autocommit=False,
    )  # fmt: skip


def test_racing_authorizations_never_pass_the_last_dollar(
    transactional_db, django_db_serialized_rollback, provision, requires_postgres
):
    assert connection.vendor == "postgresql"
    for round_number in range(ROUNDS):
        agent = provision(name=f"racer-{round_number}", email=f"r{round_number}@example.com")
        aws, openai = card_for(agent, "aws"), card_for(agent, "openai")
        warm = authorization_decide(
            request=AuthorizationRequest(
                network_id=f"warm_{round_number}",
                card_id=str(aws.pk),
                amount=Decimal("499.00"),
                currency="USD",
                merchant_mcc=aws.allowed_mccs[0],
                **merchant_of(aws),
            )
        ).authorization
        assert warm.decision == "approved"

        # $1.00 of daily headroom left; 50 charges of $0.30 on two cards race for it.
        decisions = _race([aws, openai], "0.30")

        assert decisions.count("approved") == 3, (round_number, decisions)
        assert _spent_today(agent) == 49990
        assert Authorization.objects.filter(agent=agent.agent).count() == THREADS + 1


def test_racing_agents_never_pass_a_shared_trace_cap(
    transactional_db, django_db_serialized_rollback, provision, requires_postgres
):
    agents = [provision(name=f"tracer-{i}", email=f"t{i}@example.com") for i in range(5)]
    cards = [card_for(agent, vendor) for agent in agents for vendor in ("openai", "github")]
    for round_number in range(5):
        trace = f"PR-RACE-{round_number}"
        decisions = _race(cards, "0.70", trace_id=trace)  # per-trace cap: $20
        assert decisions.count("approved") == 28, decisions  # 28 x 0.70 = 19.60
        approved = Authorization.objects.filter(trace_id=trace, decision="approved")
        assert sum(a.cap_amount.amount for a in approved) == Decimal("19.60")


def test_the_authorization_after_a_freeze_returns_is_declined(
    transactional_db, django_db_serialized_rollback, alice, staff_client, requires_postgres
):
    card = card_for(alice, "openai")
    stop = threading.Event()
    seen: list[tuple[float, str]] = []

    def keep_authorizing() -> None:
        try:
            while not stop.is_set():
                started = time.monotonic()
                decision = authorization_decide(
                    request=AuthorizationRequest(
                        network_id=f"f_{uuid.uuid4().hex}",
                        card_id=str(card.pk),
                        amount=Decimal("0.01"),
                        currency="USD",
                        merchant_mcc=card.allowed_mccs[0],
                        **merchant_of(card),
                    )
                ).authorization
                seen.append((started, decision.reason))
        finally:
            connections.close_all()

    worker = threading.Thread(target=keep_authorizing)
    worker.start()
    time.sleep(0.3)
    response = staff_client.post(
        f"/api/agents/{alice.agent.pk}/cards/{card.pk}/freeze", {"reason": "race"}, format="json"
    )
    frozen_at = time.monotonic()
    assert response.status_code == 200
    time.sleep(0.3)
    stop.set()
    worker.join(timeout=30)

    after = [reason for started, reason in seen if started > frozen_at]
    before = [reason for started, reason in seen if started <= frozen_at]
    assert after, "no authorization was attempted after the freeze"
    assert set(after) == {"card_frozen"}
    assert "" in before  # approvals went through before the freeze


def test_sequential_freeze_then_decline(alice, staff_client, network):
    card = card_for(alice, "openai")
    assert network.authorize(card, "1.00").json()["decision"] == "approved"
    staff_client.post(
        f"/api/agents/{alice.agent.pk}/cards/{card.pk}/freeze", {"reason": "kill"}, format="json"
    )
    assert network.authorize(card, "1.00").json()["reason"] == "card_frozen"
    card_freeze(card=card, actor=Actor.system("t"), reason="again")  # idempotent
    assert network.authorize(card, "1.00").json()["reason"] == "card_frozen"


def test_spend_is_read_after_the_lock_so_it_sees_what_committed_while_waiting(
    transactional_db, django_db_serialized_rollback, alice, requires_postgres
):
    """Moving the spend read before the agent's lock makes this fail."""
    card = card_for(alice, "aws")
    result: dict[str, object] = {}

    def decide() -> None:
        try:
            result["auth"] = authorization_decide(request=_request(card, "150.00")).authorization
        finally:
            connections.close_all()

    other = _other_connection()
    try:
        with other.cursor() as cursor:
            # Another transaction holds the agent's lock and spends $400 of the day.
            cursor.execute(
                "SELECT id FROM wallets_agent WHERE id = %s FOR UPDATE", [alice.agent.pk]
            )
            sql.counters_add(
                cursor,
                [
                    sql.Posting(
                        agent_id=alice.agent.pk,
                        card_id=card.pk,
                        vendor_id=card.vendor_id,
                        trace_id="",
                        currency="USD",
                        month_time_zone="UTC",
                        effective_at=timezone.now(),
                        cents=40000,
                        is_hold=True,
                    )
                ],
            )
            worker = threading.Thread(target=decide)
            worker.start()
            time.sleep(0.5)
            assert worker.is_alive(), "the decision did not wait for the agent's lock"
        other.commit()
        worker.join(timeout=30)
    finally:
        other.close()

    # $400 + $150 > $500: the read ran after the lock was granted, not before.
    assert result["auth"].reason == "daily_cap_exceeded"


def test_racing_replays_of_one_network_id_write_once(
    transactional_db, django_db_serialized_rollback, alice, requires_postgres
):
    card = card_for(alice, "openai")
    request = _request(card, "10.00", network_id=f"dup-{uuid.uuid4().hex}")
    barrier = threading.Barrier(10)

    def decide() -> tuple[int, bool]:
        try:
            barrier.wait(timeout=30)
            outcome = authorization_decide(request=request)
            return outcome.decided.authorization_id, outcome.replayed
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = [f.result(timeout=60) for f in [pool.submit(decide) for _ in range(10)]]

    ids = {auth_id for auth_id, _ in answers}
    assert len(ids) == 1  # every answer is the first decision
    assert sorted(replayed for _, replayed in answers) == [False] + [True] * 9
    assert Authorization.objects.filter(network_id=request.network_id).count() == 1
    assert LedgerEntry.objects.filter(authorization_id=ids.pop()).count() == 1
    agent_minutes = SpendCounter.objects.filter(scope__startswith="agent:", grain="min")
    assert sum(agent_minutes.values_list("cents", flat=True)) == 1000  # counted once


def test_concurrent_retries_of_one_capture_all_get_the_first_answer(
    transactional_db, django_db_serialized_rollback, alice, requires_postgres
):
    """The replay check runs under the agent's lock: before, seven of eight retries hit
    the unique network id mid-insert (an IntegrityError, an HTTP 500)."""
    card = card_for(alice, "openai")
    auth = authorization_decide(request=_request(card, "30.00")).authorization
    barrier = threading.Barrier(8)

    def capture() -> tuple[list[int], bool]:
        try:
            barrier.wait(timeout=30)
            outcome = authorization_capture(
                network_id=auth.network_id,
                amount=Decimal("30.00"),
                currency="USD",
                network_txn_id="cap-once",
            )
            return sorted(entry.pk for entry in outcome.entries), outcome.replayed
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = [f.result(timeout=60) for f in [pool.submit(capture) for _ in range(8)]]

    assert len({tuple(entries) for entries, _ in answers}) == 1
    assert sorted(replayed for _, replayed in answers) == [False] + [True] * 7
    assert LedgerEntry.objects.filter(network_txn_id="cap-once").count() == 1
    captured = Authorization.objects.get(pk=auth.pk)
    assert (captured.captured_cents, captured.held_cents, captured.hold_state) == (
        3000,
        0,
        "closed",
    )
