"""The demo (`manage.py seed_demo`): alive right after seeding, and seeded once.

Seeding takes seconds, so one class seeds once (`setUpTestData`) and each test reads it
inside its own rolled-back transaction.
"""

from __future__ import annotations

import json
import shlex
from datetime import timedelta
from io import StringIO

from django.core.management import call_command
from django.test import TestCase
from django.utils import timezone

from agentwallet.demo import EXAMPLE_AMOUNT, EXAMPLE_TRACE, RUNAWAY_TRACE, TRY_VENDOR
from approvals.models import ApprovalRequest, ApprovalStatus, CapBump, OutboxMessage
from cards.models import Card, CardEvent, CardStatus
from ledger.models import Authorization, Decision, LedgerEntry
from ledger.selectors import agent_budget
from ledger.services import counters_check
from policies import rules
from wallets.models import Agent, ApiKey

DEMO_DECLINES = {
    rules.MCC_NOT_ALLOWED,
    rules.MERCHANT_NOT_ALLOWED,
    rules.CARD_FROZEN,
    rules.DAILY_CAP_EXCEEDED,
    rules.VELOCITY_EXCEEDED,
    rules.TRACE_CAP_EXCEEDED,
}


def _example_commands(output: str) -> list[list[str]]:
    """The `network authorize` commands the seed printed, as arguments after `network`."""
    commands = []
    for line in output.splitlines():
        words = shlex.split(line)
        if "network" in words and "authorize" in words:
            commands.append(words[words.index("network") + 1 :])
    return commands


def _network(*args: str) -> dict[str, object]:
    out = StringIO()
    call_command("network", "--in-process", *args, stdout=out)
    return json.loads(out.getvalue())


class SeededDemoTests(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        out = StringIO()
        call_command("seed_demo", stdout=out)
        cls.output = out.getvalue()

    def test_every_agent_spent_in_the_last_24_hours_and_is_under_its_daily_cap(self):
        for agent in Agent.objects.all():
            daily = agent_budget(agent=agent).daily
            assert daily.spent.amount > 0, agent.name
            assert daily.cap is not None
            assert daily.spent < daily.cap, agent.name

    def test_approval_requests_are_approved_denied_expired_and_pending(self):
        statuses = set(ApprovalRequest.objects.values_list("status", flat=True))
        assert statuses == set(ApprovalStatus.values)

    def test_approved_requests_bumped_their_cap_beyond_the_charge(self):
        approved = ApprovalRequest.objects.filter(status=ApprovalStatus.APPROVED)
        assert approved.exists()
        for request in approved:
            bump = CapBump.objects.get(approval=request)
            assert bump.scope_key == request.scope_key
            assert bump.amount > request.requested_amount

    def test_no_request_has_been_pending_for_more_than_a_day(self):
        pending = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING)
        assert pending.exists()
        assert not pending.filter(created_at__lt=timezone.now() - timedelta(days=1)).exists()

    def test_expired_requests_lapsed_after_their_lifetime(self):
        for request in ApprovalRequest.objects.filter(status=ApprovalStatus.EXPIRED):
            assert request.decided_at is not None
            assert request.decided_at >= request.expires_at
            assert request.decided_at < request.expires_at + timedelta(hours=1)

    def test_declines_include_every_reason_the_demo_shows(self):
        reasons = set(
            Authorization.objects.filter(decision=Decision.DECLINED).values_list(
                "reason", flat=True
            )
        )
        assert reasons >= DEMO_DECLINES, DEMO_DECLINES - reasons

    def test_the_runaway_trace_is_stopped_and_the_example_trace_is_not(self):
        declined = Authorization.objects.filter(
            decision=Decision.DECLINED, reason=rules.TRACE_CAP_EXCEEDED
        )
        assert declined.filter(trace_id=RUNAWAY_TRACE).count() > 1
        assert not Authorization.objects.filter(
            trace_id=EXAMPLE_TRACE, decision=Decision.DECLINED
        ).exists()

    def test_the_frozen_card_was_frozen_with_a_reason(self):
        frozen = Card.objects.get(status=CardStatus.FROZEN)
        event = CardEvent.objects.filter(card=frozen).latest("created_at")
        assert event.kind == "frozen"
        assert event.reason
        assert Authorization.objects.filter(card=frozen, reason=rules.CARD_FROZEN).exists()

    def test_spend_reaches_the_last_hours(self):
        latest = Authorization.objects.filter(decision=Decision.APPROVED).latest("decided_at")
        assert latest.decided_at > timezone.now() - timedelta(hours=2)
        first = Authorization.objects.earliest("decided_at")
        assert first.decided_at < timezone.now() - timedelta(days=27)

    def test_every_settled_charge_names_its_vendors_descriptor_and_merchant_id(self):
        settled = Authorization.objects.filter(captured_cents__gt=0).select_related("vendor")
        assert settled.count() > 500
        ids_by_vendor: dict[str, set[str]] = {}
        for auth in settled:
            vendor = auth.vendor
            assert auth.merchant_name in vendor.descriptors, auth.merchant_name
            assert auth.merchant_mcc in vendor.mccs
            if vendor.network_ids:
                assert auth.merchant_network_id in vendor.network_ids
            ids_by_vendor.setdefault(vendor.slug, set()).add(auth.merchant_network_id)
        assert all(len(ids) == 1 for ids in ids_by_vendor.values()), ids_by_vendor

    def test_the_counters_agree_with_the_ledger(self):
        assert counters_check() == []

    def test_the_seed_prints_each_agents_key_and_card_to_try(self):
        for agent in Agent.objects.all():
            card = Card.objects.get(
                agent=agent, vendor__slug=TRY_VENDOR[agent.name], is_ephemeral=False
            )
            assert f"agent {agent.name} ({agent.pk})" in self.output
            assert str(card.pk) in self.output
        assert self.output.count("API key (shown once)") == 5  # four agents and staff
        assert f"example trace {EXAMPLE_TRACE}" in self.output

    def test_the_printed_example_charges_are_approved(self):
        commands = _example_commands(self.output)
        assert len(commands) == 2
        for command in commands:
            assert command[command.index("--amount") + 1] == str(EXAMPLE_AMOUNT)
            assert command[command.index("--trace") + 1] == EXAMPLE_TRACE
            answer = _network(*command)
            assert answer["decision"] == "approved", answer

    def test_the_example_trace_stops_the_second_try(self):
        command = _example_commands(self.output)[0]
        assert _network(*command)["decision"] == "approved"
        answer = _network(*command)
        assert answer["reason"] == rules.TRACE_CAP_EXCEEDED

    def test_seeding_again_changes_nothing(self):
        models = (Agent, ApiKey, Card, CardEvent, Authorization, LedgerEntry)
        models += (ApprovalRequest, CapBump, OutboxMessage)
        before = {model.__name__: model.objects.count() for model in models}
        out = StringIO()
        call_command("seed_demo", stdout=out)
        assert {model.__name__: model.objects.count() for model in models} == before
        assert "API key" not in out.getvalue()
