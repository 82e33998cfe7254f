"""Correctness under concurrency, on PostgreSQL: racing authorizations never overspend."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, connections

from cards.services import card_freeze
from conftest import card_for
from ledger.counters import read_spend
from ledger.models import Authorization
from ledger.services import AuthorizationRequest, authorization_decide
from policies.models import Policy
from wallets.actors import Actor

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
    policy = Policy.objects.get(pk=provisioned.agent.policy_id)
    from django.utils import timezone

    return read_spend(
        agent_id=provisioned.agent.pk,
        time_zone=policy.time_zone,
        currency=policy.currency,
        now=timezone.now(),
    ).day_cents


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
