"""Random sequences of authorizations, captures, reversals, refunds and time passing:
after every step no cap is exceeded and the counters equal a plain SUM of the ledger."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Sum
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import merchant_of
from ledger import sql
from ledger.models import Authorization, HoldState, LedgerEntry
from ledger.services import (
    AuthorizationRequest,
    authorization_capture,
    authorization_decide,
    authorization_reverse,
    refund_record,
)
from ledger.tests.spend_oracle import spend_from_ledger
from policies.models import Vendor
from policies.services import policy_create
from wallets.actors import Actor
from wallets.services import agent_provision

_serial = itertools.count()
CAPS = {"daily": 5000, "monthly": 12000, "trace": 1500, "openai": 4000}


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        n = next(_serial)
        vendors = list(Vendor.objects.filter(slug__in=["openai", "github", "aws"]))
        policy = policy_create(
            slug=f"machine-{n}",
            name="machine",
            currency="USD",
            daily_cap=Decimal("50"),
            monthly_cap=Decimal("120"),
            per_trace_cap=Decimal("15"),
            default_vendors=vendors,
            vendor_caps={v: Decimal("40") for v in vendors if v.slug == "openai"},
            time_zone="Europe/Paris",
        )
        self.provisioned = agent_provision(
            name=f"machine-{n}",
            principal_email="m@example.com",
            policy=policy,
            actor=Actor.system("test"),
        )
        self.cards = {new.card.vendor.slug: new.card for new in self.provisioned.cards}
        self.policy = policy
        self.now = datetime(2026, 1, 30, 22, 0, tzinfo=UTC)  # a month edge is near
        self.serial = itertools.count()
        # Traces are shared across agents: keep each run's own, so runs stay independent.
        self.traces = {"": "", "PR-1": f"PR-{n}-1", "PR-2": f"PR-{n}-2"}
        self.n = n

    def _open(self) -> list[Authorization]:
        return list(
            Authorization.objects.filter(agent=self.provisioned.agent, hold_state=HoldState.OPEN)
        )

    @rule(
        vendor=st.sampled_from(["openai", "github", "aws"]),
        cents=st.integers(min_value=1, max_value=2000),
        trace=st.sampled_from(["", "PR-1", "PR-2"]),
    )
    def authorize(self, vendor: str, cents: int, trace: str) -> None:
        card = self.cards[vendor]
        authorization_decide(
            request=AuthorizationRequest(
                network_id=f"m{self.n}_{next(self.serial)}",
                card_id=str(card.pk),
                amount=Decimal(cents) / 100,
                currency="USD",
                merchant_mcc=card.allowed_mccs[0],
                **merchant_of(card),
                trace_id=self.traces[trace],
            ),
            now=self.now,
        )

    @precondition(lambda self: bool(self._open()))
    @rule(pick=st.integers(min_value=0, max_value=100), share=st.integers(1, 100))
    def capture(self, pick: int, share: int) -> None:
        auth = self._open()[pick % len(self._open())]
        cents = max(1, auth.held_cents * share // 100)
        authorization_capture(
            network_id=auth.network_id, amount=Decimal(cents) / 100, currency="USD", now=self.now
        )

    @precondition(lambda self: bool(self._open()))
    @rule(
        pick=st.integers(min_value=0, max_value=100), full=st.booleans(), share=st.integers(1, 100)
    )
    def reverse(self, pick: int, full: bool, share: int) -> None:
        auth = self._open()[pick % len(self._open())]
        amount = None if full else Decimal(max(1, auth.held_cents * share // 100)) / 100
        authorization_reverse(
            network_id=auth.network_id, amount=amount, currency="USD", now=self.now
        )

    @rule(pick=st.integers(min_value=0, max_value=100), share=st.integers(1, 150))
    def refund(self, pick: int, share: int) -> None:
        captured = list(
            Authorization.objects.filter(agent=self.provisioned.agent, captured_cents__gt=0)
        )
        if not captured:
            return
        auth = captured[pick % len(captured)]
        cents = max(1, auth.captured_cents * share // 100)
        refund_record(
            card_id=str(auth.card_id),
            amount=Decimal(cents) / 100,
            currency="USD",
            network_txn_id=f"rf{self.n}_{next(self.serial)}",
            authorization_network_id=auth.network_id,
            now=self.now,
        )

    @rule(minutes=st.integers(min_value=1, max_value=26 * 60))
    def advance(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(seconds=st.integers(min_value=1, max_value=119))
    def advance_seconds(self, seconds: int) -> None:
        # Off the minute, the rolling windows start inside a minute: the ledger edge reads.
        self.now += timedelta(seconds=seconds)

    def _scopes(self) -> dict[str, list]:
        return {
            "card_ids": [card.pk for card in self.cards.values()],
            "vendor_ids": [card.vendor_id for card in self.cards.values()],
            "trace_ids": [self.traces["PR-1"], self.traces["PR-2"]],
        }

    def _spend(self) -> sql.Spend:
        """As the agent's decisions read it."""
        with connection.cursor() as cursor:
            return sql.spend_read(
                cursor,
                agent_id=self.provisioned.agent.pk,
                currency="USD",
                month_time_zone="Europe/Paris",
                now=self.now,
                **self._scopes(),
            )

    @invariant()
    def no_cap_is_ever_exceeded(self) -> None:
        spend = self._spend()
        assert spend.day_cents <= CAPS["daily"]
        assert spend.month_cents <= CAPS["monthly"]
        assert spend.vendor_month_cents[self.cards["openai"].vendor_id] <= CAPS["openai"]
        assert all(cents <= CAPS["trace"] for cents in spend.trace_cents.values())

    @invariant()
    def counters_equal_the_ledger(self) -> None:
        assert self._spend() == spend_from_ledger(
            agent_id=self.provisioned.agent.pk,
            month_time_zone="Europe/Paris",
            now=self.now,
            **self._scopes(),
        )
        entries = LedgerEntry.objects.filter(agent=self.provisioned.agent)
        held = sum(a.held_cents for a in self._open())
        all_time = entries.aggregate(s=Sum("cap_cents"))["s"] or 0
        captured = entries.filter(kind="capture").aggregate(s=Sum("cap_cents"))["s"] or 0
        refunded = entries.filter(kind="refund").aggregate(s=Sum("cap_cents"))["s"] or 0
        assert all_time == held + captured + refunded


def test_random_lifecycles_keep_every_cap_and_the_counters_exact(db):
    LedgerMachine.TestCase.settings = settings(
        max_examples=25,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    LedgerMachine.TestCase().runTest()
