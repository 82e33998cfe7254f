"""The nightly reconciliation with Stripe Issuing: the issuer's records of a day (read
through the real `stripe` package from a local server speaking Stripe's API) held
against the ledger, with mismatches planted on both sides."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from approvals.models import OutboxKind, OutboxMessage
from approvals.slack.blocks import reconciliation_blocks, reconciliation_text
from cards.tests.fake_stripe import deliver
from conftest import card_for, merchant_of
from ledger.models import IssuerReconciliation, ReconciliationMismatch
from ledger.services import authorization_capture
from ledger.services.authorization import AuthorizationRequest, authorization_decide
from ledger.services.reconciliation import issuer_reconcile

Mismatch = ReconciliationMismatch


def today() -> datetime:
    return timezone.now().astimezone(UTC)


def approved(fake, card, client, cents: int) -> str:
    seen = merchant_of(card)
    event = fake.authorize(
        card.issuer_card_id,
        cents,
        mcc=card.vendor.mccs[0],
        merchant_name=seen["merchant_name"],
        merchant_network_id=seen["merchant_network_id"],
    )
    assert deliver(client, event).json()["approved"] is True
    auth_id = event["data"]["object"]["id"]
    deliver(client, fake.decided(auth_id, True))
    return auth_id


@pytest.fixture
def planted(fake_stripe, alice, client):
    """A day on which most things agree and one of each mismatch was planted."""
    openai = card_for(alice, "openai")
    other = next(new.card for new in alice.cards if new.card.pk != openai.pk)
    # Agreeing on both sides: an approved purchase, captured.
    clean = approved(fake_stripe, openai, client, 1000)
    deliver(client, fake_stripe.capture(clean, 1000))

    # At Stripe only: an authorization and a capture whose events never reached us.
    lost_auth = fake_stripe.authorize(openai.issuer_card_id, 500)
    fake_stripe.decided(lost_auth["data"]["object"]["id"], True)
    lost_capture = fake_stripe.capture(None, 700, card_id=openai.issuer_card_id)
    # A capture we recorded for another amount than Stripe's.
    drifted = approved(fake_stripe, openai, client, 2000)
    event = fake_stripe.capture(drifted, 2000)
    deliver(client, event)
    fake_stripe.transactions[event["data"]["object"]["id"]]["merchant_amount"] = -2100

    # Here only: a decision and a capture Stripe never saw.
    ghost = authorization_decide(
        request=AuthorizationRequest(
            network_id="iauth_ghost",
            card_id=str(openai.pk),
            amount=Decimal("3.00"),
            currency="USD",
            merchant_mcc=openai.vendor.mccs[0],
            **merchant_of(openai),
        )
    )
    assert ghost.decided.decision == "approved"
    authorization_capture(
        network_id="iauth_ghost", amount=Decimal("3.00"), currency="USD", network_txn_id="ipi_ghost"
    )
    # A card frozen at Stripe behind our back, and one whose limit was changed there.
    fake_stripe.cards[openai.issuer_card_id]["status"] = "inactive"
    fake_stripe.cards[other.issuer_card_id]["spending_controls"]["spending_limits"] = [
        {"amount": 1, "categories": None, "interval": "daily"}
    ]
    return {
        "openai": openai,
        "other": other,
        "clean": clean,
        "lost_auth": lost_auth["data"]["object"]["id"],
        "lost_capture": lost_capture["data"]["object"]["id"],
        "drifted": event["data"]["object"]["id"],
    }


def test_reconciliation_finds_each_planted_mismatch_and_nothing_else(
    planted, fake_stripe, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = issuer_reconcile(day=today().date())
    found = {(row["kind"], row["object_id"]) for row in run.mismatches}
    assert found == {
        (Mismatch.AUTHORIZATION_MISSING_HERE, planted["lost_auth"]),
        (Mismatch.TRANSACTION_MISSING_HERE, planted["lost_capture"]),
        (Mismatch.TRANSACTION_AMOUNT_DIFFERS, planted["drifted"]),
        (Mismatch.AUTHORIZATION_MISSING_AT_ISSUER, "iauth_ghost"),
        (Mismatch.TRANSACTION_MISSING_AT_ISSUER, "ipi_ghost"),
        (Mismatch.CARD_STATUS_DIFFERS, planted["openai"].issuer_card_id),
        (Mismatch.CARD_CONTROLS_DIFFER, planted["other"].issuer_card_id),
    }
    drifted = next(row for row in run.mismatches if row["object_id"] == planted["drifted"])
    assert "21.00 USD at the issuer" in drifted["detail"]
    assert (run.authorizations, run.transactions) == (3, 3)
    assert run.cards == len(fake_stripe.cards)
    # Ours is the truth: the status and the controls were sent to Stripe again.
    assert fake_stripe.cards[planted["openai"].issuer_card_id]["status"] == "active"
    limits = fake_stripe.cards[planted["other"].issuer_card_id]["spending_controls"]
    assert limits["spending_limits"] == []

    # Reported to Slack through the outbox.
    message = OutboxMessage.objects.get(kind=OutboxKind.RECONCILIATION)
    assert message.payload["mismatches"] == 7
    assert message.payload["url"].endswith(f"/reconciliation/{run.pk}/")
    assert "7 mismatches" in reconciliation_text(message.payload)
    assert "Transaction at the issuer only: 1" in str(reconciliation_blocks(message.payload))

    # Run again for the day: replaced, not doubled, and Slack is not told twice. The
    # re-sent card status and controls now agree.
    with django_capture_on_commit_callbacks(execute=True):
        again = issuer_reconcile(day=today().date())
    assert again.pk == run.pk
    assert IssuerReconciliation.objects.count() == 1
    assert OutboxMessage.objects.filter(kind=OutboxKind.RECONCILIATION).count() == 1
    assert {row["kind"] for row in again.mismatches} == found_kinds(found) - {
        Mismatch.CARD_STATUS_DIFFERS,
        Mismatch.CARD_CONTROLS_DIFFER,
    }


def found_kinds(found: set[tuple[str, str]]) -> set[str]:
    return {kind for kind, _ in found}


def test_a_day_that_agrees_has_no_mismatch_and_tells_nobody(fake_stripe, alice, client):
    auth = approved(fake_stripe, card_for(alice, "openai"), client, 1000)
    deliver(client, fake_stripe.capture(auth, 400))
    deliver(client, fake_stripe.reverse(auth))
    run = issuer_reconcile(day=today().date())
    assert run.mismatches == []
    assert not OutboxMessage.objects.filter(kind=OutboxKind.RECONCILIATION).exists()


def test_another_day_sees_none_of_todays_records(fake_stripe, alice, client):
    approved(fake_stripe, card_for(alice, "openai"), client, 1000)
    run = issuer_reconcile(day=datetime(2020, 1, 1, tzinfo=UTC).date())
    assert (run.authorizations, run.transactions) == (0, 0)
    assert run.mismatches == []


def test_the_command_prints_the_mismatches_and_exits_1(planted):
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("reconcile_issuer", day=today().date().isoformat(), stdout=out)
    assert exited.value.code == 1
    assert "7 mismatches" in out.getvalue()
    assert "transaction_missing_at_issuer ipi_ghost" in out.getvalue()


def test_the_command_on_the_sandbox_does_nothing(db):
    out = StringIO()
    call_command("reconcile_issuer", stdout=out)
    assert "keeps no records" in out.getvalue()
    assert not IssuerReconciliation.objects.exists()


def test_the_nightly_task_is_scheduled(settings):
    schedule = settings.CELERY_BEAT_SCHEDULE["reconcile-issuer"]
    assert schedule["task"] == "ledger.tasks.reconcile_issuer_task"


def test_the_portal_shows_a_run_to_finance_and_not_to_a_lead(planted, django_user_model):
    from django.contrib.auth.models import Group

    run = issuer_reconcile(day=today().date())
    finance = django_user_model.objects.create_user(username="fin", password="pw-12345678")
    finance.groups.add(Group.objects.get(name="Finance"))
    lead = django_user_model.objects.create_user(username="lead1", password="pw-12345678")
    lead.groups.add(Group.objects.get(name="Engineering lead"))
    browser = Client()
    browser.force_login(finance)
    listing = browser.get("/reports/")
    assert f"/reconciliation/{run.pk}/" in listing.content.decode()
    page = browser.get(f"/reconciliation/{run.pk}/")
    assert page.status_code == 200
    assert "ipi_ghost" in page.content.decode()
    browser.force_login(lead)
    assert browser.get(f"/reconciliation/{run.pk}/").status_code == 404


def test_every_page_of_the_issuers_lists_is_read(fake_stripe, alice):
    card = card_for(alice, "openai")
    for _ in range(205):  # three pages of 100
        fake_stripe.authorize(card.issuer_card_id, 100)
    run = issuer_reconcile(day=today().date())
    assert run.authorizations == 205
    assert len(run.mismatches) == 205  # none of them reached us
    pages = fake_stripe.calls("GET", "/v1/issuing/authorizations")
    assert len(pages) == 3
    assert "starting_after" in pages[-1]
