"""A principal verifies their email through a signed link; until then a policy may hold
their agents' card charges to a small amount (principal_unverified)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail, signing
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from agentwallet.models import AuditAction, AuditEvent
from conftest import card_for
from wallets.models import Principal
from wallets.verification import verification_link, verification_send


def _link_path(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def test_provisioning_mails_a_signed_link(provision, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        provisioned = provision(name="new-bot", email="Lead@Acme.dev", verified=False)

    assert [message.to for message in mail.outbox] == [["lead@acme.dev"]]
    link = re.search(r"https?://\S+/principals/verify/\S+/", mail.outbox[0].body).group(0)
    principal = provisioned.agent.principal
    assert not principal.email_verified

    page = Client().get(_link_path(link))
    assert page.status_code == 200
    assert b"Verify my email" in page.content  # a GET verifies nothing (mail scanners)
    principal.refresh_from_db()
    assert not principal.email_verified

    done = Client().post(_link_path(link))
    assert done.status_code == 200
    principal.refresh_from_db()
    assert principal.email_verified
    assert Client().post(_link_path(link)).status_code == 200  # again: still fine


@pytest.fixture
def carol(provision):
    """An agent whose principal has not followed the link yet."""
    return provision(name="carol-agent", email="carol@example.com", verified=False)


def test_a_tampered_or_foreign_link_verifies_nothing(carol):
    principal = carol.agent.principal
    link = _link_path(verification_link(principal))
    token = link.rstrip("/").rsplit("/", 1)[1]
    forged = signing.dumps({"principal": principal.pk, "email": principal.email}, salt="other")
    for bad in (token[:-2] + "xx", forged, "not-a-token"):
        answer = Client().post(f"/principals/verify/{bad}/")
        assert answer.status_code == 400
        assert b"not valid" in answer.content
    principal.email = "someone.else@example.com"
    principal.save()
    assert Client().post(link).status_code == 400
    principal.refresh_from_db()
    assert not principal.email_verified


def test_an_expired_link_verifies_nothing_and_offers_a_new_one(
    carol, django_capture_on_commit_callbacks
):
    link = _link_path(verification_link(carol.agent.principal))
    with time_machine.travel(timezone.now() + timedelta(days=4)):
        answer = Client().post(link)
        assert answer.status_code == 400
        assert b"expired" in answer.content
        assert b"Mail me a new link" in answer.content
        assert not Principal.objects.get(pk=carol.agent.principal_id).email_verified

        with django_capture_on_commit_callbacks(execute=True):
            resent = Client().post(link, {"action": "resend"})
        assert resent.status_code == 200
        assert b"on its way to carol@example.com" in resent.content
        assert [message.to for message in mail.outbox] == [["carol@example.com"]]
        fresh = re.search(r"https?://\S+/principals/verify/\S+/", mail.outbox[0].body).group(0)
        assert Client().post(_link_path(fresh)).status_code == 200
    assert Principal.objects.get(pk=carol.agent.principal_id).email_verified
    audit = AuditEvent.objects.filter(action=AuditAction.PRINCIPAL_LINK_SENT).get()
    assert audit.actor == "principal:carol@example.com"


def test_a_new_link_at_most_once_a_minute(carol, django_capture_on_commit_callbacks):
    principal = carol.agent.principal
    with django_capture_on_commit_callbacks(execute=True):
        # Provisioning mailed one just now.
        assert verification_send(principal, actor="user:bob") is False
    assert not mail.outbox
    with (
        time_machine.travel(timezone.now() + timedelta(seconds=61)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert verification_send(principal, actor="user:bob") is True
        assert verification_send(principal, actor="user:bob") is False
    assert [message.to for message in mail.outbox] == [["carol@example.com"]]
    assert AuditEvent.objects.filter(action=AuditAction.PRINCIPAL_LINK_SENT).count() == 1


def test_a_still_valid_or_forged_link_cannot_ask_for_another(carol):
    link = _link_path(verification_link(carol.agent.principal))
    assert Client().post(link, {"action": "resend"}).status_code == 400
    assert Client().post("/principals/verify/forged/", {"action": "resend"}).status_code == 400
    assert not mail.outbox


def test_verifying_is_audited_once(carol):
    link = _link_path(verification_link(carol.agent.principal))
    Client().post(link)
    Client().post(link)
    audit = AuditEvent.objects.filter(action=AuditAction.PRINCIPAL_VERIFIED).get()
    assert (audit.actor, audit.subject) == (
        "principal:carol@example.com",
        "principal carol@example.com",
    )
    assert audit.detail == {"agents": ["carol-agent"]}


def test_the_mail_task_retries_a_mail_server_that_is_away(carol, settings, monkeypatch):
    from celery.exceptions import Retry

    from wallets import tasks

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens: refused
    with pytest.raises(ConnectionRefusedError):  # inline: the caller's on_commit logs it
        tasks.principal_verification_mail_task.apply(
            args=[carol.agent.principal_id], throw=True
        ).get()
    retried = []
    monkeypatch.setattr(
        tasks.principal_verification_mail_task,
        "retry",
        lambda **kwargs: retried.append(kwargs) or Retry(),
    )
    with pytest.raises(Retry):
        tasks.principal_verification_mail_task.run(carol.agent.principal_id)
    assert retried[0]["countdown"] == 30


def test_no_mail_once_verified(alice):
    from wallets.tasks import principal_verification_mail_task

    assert principal_verification_mail_task.apply(args=[alice.agent.principal_id]).get() is False
    assert not mail.outbox


def test_unverified_charges_above_the_policys_limit_are_declined(carol, network):
    alice = carol
    alice_client = APIClient()
    alice_client.credentials(HTTP_AUTHORIZATION=f"Bearer {carol.raw_key}")
    policy = alice.agent.policy
    policy.unverified_charge_limit = Decimal("10.00")
    policy.save()
    card = card_for(alice, "anthropic")

    assert network.authorize(card, "9.99").json()["decision"] == "approved"
    declined = network.authorize(card, "10.01").json()
    assert (declined["decision"], declined["reason"]) == ("declined", "principal_unverified")
    assert declined["cap"] == {
        "scope": "unverified_principal",
        "limit": {"amount": "10.00", "currency": "USD"},
        "remaining": {"amount": "10.00", "currency": "USD"},
    }
    assert declined["approval_id"] is None  # the principal's click, not a lead's, lifts it
    agent = alice_client.get(f"/api/agents/{alice.agent.pk}").json()
    assert agent["principal_email_verified"] is False

    Client().post(_link_path(verification_link(alice.agent.principal)))

    assert network.authorize(card, "10.01").json()["decision"] == "approved"
    assert alice_client.get(f"/api/agents/{alice.agent.pk}").json()["principal_email_verified"]


def test_the_limit_is_set_in_the_policys_currency(staff_client):
    ok = staff_client.patch(
        "/api/policies/starter",
        {"unverified_charge_limit": {"amount": "25.00", "currency": "USD"}},
        format="json",
    )
    assert ok.status_code == 200, ok.json()
    assert ok.json()["unverified_charge_limit"] == {"amount": "25.00", "currency": "USD"}
    wrong = staff_client.patch(
        "/api/policies/starter",
        {"unverified_charge_limit": {"amount": "25.00", "currency": "EUR"}},
        format="json",
    )
    assert wrong.status_code == 400


def test_the_starter_policy_and_new_ones_hold_unverified_principals_to_25(
    starter_policy, staff_client
):
    assert starter_policy.unverified_charge_limit.amount == Decimal("25.00")
    created = staff_client.post(
        "/api/policies",
        {
            "slug": "euro-team",
            "name": "Euro team",
            "currency": "EUR",
            "daily_cap": {"amount": "100.00", "currency": "EUR"},
            "monthly_cap": {"amount": "1000.00", "currency": "EUR"},
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["unverified_charge_limit"] == {"amount": "25.00", "currency": "EUR"}
    none = staff_client.post(
        "/api/policies",
        {
            "slug": "trusting",
            "name": "Trusting",
            "currency": "USD",
            "daily_cap": {"amount": "100.00", "currency": "USD"},
            "monthly_cap": {"amount": "1000.00", "currency": "USD"},
            "unverified_charge_limit": None,
        },
        format="json",
    )
    assert none.json()["unverified_charge_limit"] is None


def test_a_lead_mails_a_new_link_from_the_agents_page_a_viewer_cannot(
    carol, django_capture_on_commit_callbacks
):
    from agentwallet.tests.test_portal import signed_in, user_with
    from wallets.models import TeamLead

    Principal.objects.filter(pk=carol.agent.principal_id).update(verification_sent_at=None)
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=carol.agent.principal_id)
    page = signed_in(lead).get(f"/agents/{carol.agent.pk}/").content.decode()
    assert "each card charge is held to 25.00 USD" in page
    url = f"/agents/{carol.agent.pk}/resend-verification"

    assert signed_in(user_with("Viewer")).post(url).status_code in (403, 404)
    with django_capture_on_commit_callbacks(execute=True):
        done = signed_in(lead).post(url, follow=True)
    assert "A new link is on its way to carol@example.com" in done.content.decode()
    assert [message.to for message in mail.outbox] == [["carol@example.com"]]
    audit = AuditEvent.objects.get(action=AuditAction.PRINCIPAL_LINK_SENT)
    assert audit.actor == "user:lena"
