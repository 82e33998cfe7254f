"""The agents' client against the live app: AgentWallet's own WSGI application, in
process (each test's transaction), through the client's real httpx stack."""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from agentwallet_client import (
    AgentWallet,
    AgentWalletError,
    Approval,
    Budget,
    Card,
    Declined,
    IssuedCard,
    Money,
    ci_trace_id,
)
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections

from cards.models import Card as CardRow
from ledger.models import LedgerEntry
from wallets.tests.x402_requirements import RESOURCE, requirement, v2_header


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The app runs inside the test's transaction: its requests must not close it."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


class Flaky(httpx.BaseTransport):
    """Loses the answers of the first `lose` requests to paths ending so: the server did
    the work, the client never heard."""

    def __init__(self, lose: int = 0, suffix: str = "") -> None:
        self.inner = httpx.WSGITransport(app=get_wsgi_application())
        self.lose, self.suffix, self.seen = lose, suffix, []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.seen.append((request.method, request.url.path))
        if self.lose and request.url.path.endswith(self.suffix):
            self.lose -= 1
            raise httpx.ReadError("connection reset", request=request)
        return response


def wallet_of(provisioned, transport=None) -> AgentWallet:
    return AgentWallet("http://testserver", provisioned.raw_key, transport=transport or Flaky())


def test_the_agent_is_found_from_its_key(alice, monkeypatch):
    monkeypatch.setenv("AGENTWALLET_URL", "http://testserver")
    monkeypatch.setenv("AGENTWALLET_API_KEY", alice.raw_key)
    wallet = AgentWallet(transport=Flaky())
    assert wallet.agent_id == str(alice.agent.pk)


def test_the_budget_is_typed_with_decimal_money(alice):
    budget = wallet_of(alice).budget()

    assert isinstance(budget, Budget)
    assert budget.rolling_24h.cap == Money(Decimal("500.00"), "USD")
    assert budget.rolling_24h.remaining == Money(Decimal("500.00"), "USD")
    assert isinstance(budget.month.spent.amount, Decimal)
    assert {card.vendor for card in budget.cards} >= {"openai", "anthropic", "aws"}
    assert budget.x402.per_call_cap == Money(Decimal("5.00"), "USD")


def test_cards_listed_one_read_one_requested_and_frozen(alice):
    wallet = wallet_of(alice)
    cards = wallet.cards()
    assert all(isinstance(card, Card) for card in cards)
    assert wallet.card(cards[0].id) == cards[0]

    issued = wallet.request_card(
        "openai", monthly_cap="40.00", trace_id="acme/api#12", expires_in_seconds=3600
    )

    assert isinstance(issued, IssuedCard)
    assert issued.card.is_ephemeral
    assert issued.card.trace_id == "acme/api#12"
    assert issued.card.monthly_cap == Money(Decimal("40.00"), "USD")
    assert issued.number.endswith(issued.card.last4)
    assert issued.cvc.isdigit()
    assert issued.number not in repr(issued)
    assert f"cvc='{issued.cvc}'" not in repr(issued)
    frozen = wallet.freeze_card(issued.card.id, "done with it")
    assert frozen.status == "frozen"


def test_a_bad_request_raises_the_apis_error(alice):
    with pytest.raises(AgentWalletError) as error:
        wallet_of(alice).request_card("no-such-vendor")
    assert error.value.status == 400
    assert "vendor" in error.value.body["error"]["fields"]


def test_the_trace_context_is_cleared_on_exit_whatever_happens(alice):
    wallet = wallet_of(alice)
    with pytest.raises(RuntimeError), wallet.trace("acme/api#4823", ttl_seconds=600) as context:
        assert context.trace_id == "acme/api#4823"
        alice.agent.refresh_from_db()
        assert alice.agent.trace_id == "acme/api#4823"
        raise RuntimeError("the agent's task failed")
    alice.agent.refresh_from_db()
    assert alice.agent.trace_id == ""


def test_a_trace_is_derived_from_the_ci_it_runs_in(alice, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/api")
    monkeypatch.setenv("GITHUB_REF", "refs/pull/4823/merge")
    context = wallet_of(alice).set_trace()
    assert context.trace_id == "acme/api#4823"


@pytest.mark.parametrize(
    ("environ", "trace_id"),
    [
        (
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_REPOSITORY": "a/b",
                "GITHUB_REF": "refs/pull/7/merge",
            },
            "a/b#7",
        ),
        (
            {"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "a/b", "GITHUB_RUN_ID": "99"},
            "a/b@run-99",
        ),
        ({"GITLAB_CI": "true", "CI_PROJECT_PATH": "g/p", "CI_MERGE_REQUEST_IID": "5"}, "g/p#5"),
        ({"GITLAB_CI": "true", "CI_PROJECT_PATH": "g/p", "CI_PIPELINE_ID": "8"}, "g/p@pipeline-8"),
        ({"AGENTWALLET_TRACE_ID": "deploy 2026-12-02", "GITLAB_CI": "true"}, "deploy-2026-12-02"),
        ({}, ""),
    ],
)
def test_ci_trace_ids_qualify_the_repository(environ, trace_id):
    assert ci_trace_id(environ) == trace_id


def test_approvals_are_asked_and_read(alice):
    wallet = wallet_of(alice)
    asked = wallet.ask_approval("daily", "250.00", "a big eval run tonight")
    assert isinstance(asked, Approval)
    assert (asked.status, asked.requested_amount) == ("pending", Money(Decimal("250.00"), "USD"))
    assert wallet.approval(asked.id) == asked


def test_the_ledger_and_a_traces_spend_are_read(alice):
    wallet = wallet_of(alice)
    signed = wallet.pay_x402(v2_header(requirement("1230000")), resource=RESOURCE, trace_id="a/b#1")

    entries = wallet.ledger(rail="usdc")
    assert [(e.kind, e.trace_id, e.cap_amount) for e in entries] == [
        ("x402_payment", "a/b#1", Money(Decimal("1.23"), "USD"))
    ]
    assert entries[0].id == signed.ledger_entry_id
    spend = wallet.trace_spend("a/b#1")
    assert (spend.spent, spend.entries) == (Money(Decimal("1.23"), "USD"), 1)


def test_a_decline_raises_with_its_reason_cap_headroom_and_approval(alice):
    alice.agent.policy.daily_cap = Decimal("5.00")
    alice.agent.policy.save()
    wallet = wallet_of(alice)
    wallet.pay_x402(v2_header(requirement("4000000")), resource=RESOURCE)

    with pytest.raises(Declined) as declined:
        wallet.pay_x402(v2_header(requirement("2000000")), resource=RESOURCE)

    assert declined.value.reason == "daily_cap_exceeded"
    assert declined.value.cap.scope == "daily"
    assert declined.value.headroom == Decimal("1.00")
    assert wallet.approval(declined.value.approval_id).status == "pending"


def test_the_kill_switch_freezes_every_card(alice):
    frozen = wallet_of(alice).freeze("the agent saw a prompt injection")
    assert sorted(frozen) == sorted(str(c.pk) for c in CardRow.objects.filter(agent=alice.agent))
    assert set(CardRow.objects.filter(agent=alice.agent).values_list("status", flat=True)) == {
        "frozen"
    }


def test_reads_are_asked_again_after_a_lost_answer(alice):
    flaky = Flaky(lose=1, suffix="/budget")
    assert wallet_of(alice, flaky).budget().agent_id == str(alice.agent.pk)
    assert [path for _, path in flaky.seen].count(f"/api/agents/{alice.agent.pk}/budget") == 2


def test_a_card_request_is_never_sent_twice(alice):
    flaky = Flaky(lose=1, suffix="/cards")
    before = CardRow.objects.filter(agent=alice.agent).count()
    with pytest.raises(httpx.ReadError):
        wallet_of(alice, flaky).request_card("openai", expires_in_seconds=600)
    assert CardRow.objects.filter(agent=alice.agent).count() == before + 1  # issued once


def test_an_x402_payment_asked_again_is_paid_once(alice):
    flaky = Flaky(lose=2, suffix="/x402/pay")
    signed = wallet_of(alice, flaky).pay_x402(v2_header(), resource=RESOURCE)
    assert [path for _, path in flaky.seen].count(f"/api/agents/{alice.agent.pk}/x402/pay") == 3
    assert LedgerEntry.objects.filter(agent=alice.agent).count() == 1
    assert signed.ledger_entry_id == LedgerEntry.objects.get(agent=alice.agent).pk


def test_another_agents_objects_answer_404(alice, bob):
    wallet = AgentWallet(
        "http://testserver", bob.raw_key, agent_id=str(alice.agent.pk), transport=Flaky()
    )
    with pytest.raises(AgentWalletError) as error:
        wallet.budget()
    assert error.value.status == 404


def test_a_single_use_card_above_the_room_left_raises_declined(alice):
    alice.agent.policy.daily_cap = Decimal("20.00")
    alice.agent.policy.save()
    wallet = wallet_of(alice)
    card = wallet.request_card("openai", max_amount="15.00", expires_in_seconds=900)
    assert (card.card.single_use, card.card.monthly_cap) == (True, Money(Decimal("15.00"), "USD"))

    with pytest.raises(Declined) as declined:
        wallet.request_card("anthropic", max_amount="25.00", expires_in_seconds=900)

    assert declined.value.reason == "daily_cap_exceeded"
    assert declined.value.headroom == Decimal("20.00")
    assert wallet.approval(declined.value.approval_id).status == "pending"
