"""A principal verifies their email through a signed link; until then a policy may hold
their agents' card charges to a small amount (principal_unverified)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import time_machine
from django.core import mail, signing
from django.test import Client
from django.utils import timezone

from conftest import card_for
from wallets.models import Principal
from wallets.verification import verification_link


def _link_path(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link)


def test_provisioning_mails_a_signed_link(provision, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        provisioned = provision(name="new-bot", email="Lead@Acme.dev")

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


def test_a_tampered_or_foreign_link_verifies_nothing(alice):
    principal = alice.agent.principal
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


def test_an_expired_link_verifies_nothing(alice):
    link = _link_path(verification_link(alice.agent.principal))
    with time_machine.travel(timezone.now() + timedelta(days=4)):
        answer = Client().post(link)
    assert answer.status_code == 400
    assert b"expired" in answer.content
    assert not Principal.objects.get(pk=alice.agent.principal_id).email_verified


def test_unverified_charges_above_the_policys_limit_are_declined(alice, network, alice_client):
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
