"""The portal's agent pages: the list with its filters, one agent with its budget, its
cards (linked, with their last use), the kill switch, issuing a card, and keys;
permissions checked on the server, another team's agent a 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from djmoney.money import Money

from agentwallet.models import AuditAction, AuditEvent
from agentwallet.tests.test_portal import PASSWORD, signed_in, user_with
from cards.crypto import decrypt_number
from cards.models import Card, CardEvent
from conftest import card_for
from ledger.models import Authorization
from wallets.models import ApiKey, Principal, TeamLead


@pytest.fixture
def spent(alice, bob, network):
    assert network.authorize(card_for(alice, "openai"), "12.50").json()["decision"] == "approved"
    return alice, bob


def test_the_list_shows_agents_with_their_spend_and_filters(spent):
    client = signed_in(user_with("Viewer"))
    page = client.get("/agents/").content.decode()
    assert "alice-agent" in page
    assert "bob-agent" in page
    assert "12.50 USD" in page
    found = client.get("/agents/?q=ALICE").content.decode()
    assert "alice-agent" in found
    assert "bob-agent" not in found
    assert "No agent matches" in client.get("/agents/?status=suspended").content.decode()
    fragment = client.get("/agents/?q=bob", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment
    assert "bob-agent" in fragment


def test_the_list_filters_by_team(spent):
    alice, bob = spent
    client = signed_in(user_with("Finance"))
    page = client.get("/agents/").content.decode()
    assert f'<option value="{bob.agent.principal_id}" >bob@example.com</option>' in page
    found = client.get(f"/agents/?team={bob.agent.principal_id}", headers={"HX-Request": "true"})
    assert "bob-agent" in found.content.decode()
    assert "alice-agent" not in found.content.decode()
    assert client.get("/agents/?team=x%00").status_code == 200  # ignored, not a 500
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    led = signed_in(lead)
    assert "bob@example.com" not in led.get("/agents/").content.decode()
    assert "alice-agent" not in led.get(f"/agents/?team={bob.agent.principal_id}").content.decode()


def test_the_list_is_paginated_with_flat_queries(provision):
    client = signed_in(user_with("Viewer"))
    provision(name="p0", email="p0@example.com")

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(path).status_code == 200
        return len(captured)

    few = queries("/agents/")
    for n in range(1, 30):
        provision(name=f"p{n:02d}", email=f"p{n}@example.com")
    assert queries("/agents/") == few
    assert "Page 1 of 2" in client.get("/agents/").content.decode()
    assert "Page 2 of 2" in client.get("/agents/?page=2").content.decode()


def test_one_agent_shows_the_budget_the_api_gives(spent, staff_client):
    alice, _ = spent
    page = signed_in(user_with("Viewer")).get(f"/agents/{alice.agent.pk}/").content.decode()
    budget = staff_client.get(f"/api/agents/{alice.agent.pk}/budget").json()
    assert budget["rolling_24h"]["spent"]["amount"] == "12.50"
    assert 'data-testid="budget-day">12.50' in page
    assert 'data-testid="budget-month">12.50' in page
    assert "OpenAI" in page
    assert ">Freeze</button>" not in page  # a viewer cannot


def test_a_lead_sees_their_team_only(spent):
    alice, bob = spent
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    assert "bob-agent" not in client.get("/agents/").content.decode()
    assert client.get(f"/agents/{bob.agent.pk}/").status_code == 404
    card = card_for(bob, "openai")
    forged = client.post(f"/agents/{bob.agent.pk}/freeze-card", {"card": card.pk, "reason": "x"})
    assert forged.status_code == 404
    card.refresh_from_db()
    assert card.status == "active"
    assert client.get("/agents/not-a-uuid/").status_code == 404


def test_freezing_a_card_asks_why_and_the_next_charge_is_declined(spent, network):
    alice, _ = spent
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    card = card_for(alice, "openai")
    path = f"/agents/{alice.agent.pk}/freeze-card"
    no_reason = client.post(path, {"card": card.pk, "reason": " "}, follow=True)
    assert "Nothing changed." in no_reason.content.decode()
    card.refresh_from_db()
    assert card.status == "active"
    client.post(path, {"card": card.pk, "reason": "prompt injection suspected"})
    card.refresh_from_db()
    assert card.status == "frozen"
    event = CardEvent.objects.get(card=card, kind="frozen")
    assert (event.actor, event.reason) == ("user:lena", "prompt injection suspected")
    assert network.authorize(card, "1.00").json()["reason"] == "card_frozen"
    client.post(f"/agents/{alice.agent.pk}/unfreeze-card", {"card": card.pk})
    card.refresh_from_db()
    assert card.status == "active"


def test_the_kill_switch_freezes_every_card(spent):
    alice, _ = spent
    client = signed_in(user_with(None, "root"))
    root = client  # a superuser below
    from django.contrib.auth.models import User

    User.objects.filter(username="root").update(is_superuser=True)
    root.post(f"/agents/{alice.agent.pk}/freeze-agent", {"reason": "runaway loop"})
    statuses = set(alice.agent.cards.values_list("status", flat=True))
    assert statuses == {"frozen"}


def test_a_viewer_cannot_freeze_or_make_keys(spent):
    alice, _ = spent
    client = signed_in(user_with("Viewer"))
    card = card_for(alice, "openai")
    assert (
        client.post(
            f"/agents/{alice.agent.pk}/freeze-card", {"card": card.pk, "reason": "x"}
        ).status_code
        == 403
    )
    assert client.post(f"/agents/{alice.agent.pk}/create-key", {"name": "k"}).status_code == 403
    card.refresh_from_db()
    assert card.status == "active"


def test_keys_are_shown_once_and_can_be_revoked(spent):
    alice, _ = spent
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    created = client.post(f"/agents/{alice.agent.pk}/create-key", {"name": "ci-runner"})
    assert "no-store" in created["Cache-Control"]
    page = created.content.decode()
    assert 'data-testid="new-key">' in page
    again = client.get(f"/agents/{alice.agent.pk}/").content.decode()
    assert 'data-testid="new-key"' not in again  # shown once
    key = ApiKey.objects.get(agent=alice.agent, name="ci-runner")
    client.post(f"/agents/{alice.agent.pk}/revoke-key", {"key": key.pk})
    key.refresh_from_db()
    assert key.revoked


def test_provisioning_in_the_portal_shows_the_key_and_numbers_once(db):
    from cards.models import Card
    from wallets.models import Agent

    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal=Principal.objects.create(email="lena@acme.dev"))
    client = signed_in(lead)
    assert client.get("/agents/new/").status_code == 200
    bad = client.post("/agents/new/", {"name": "", "principal_email": "nope", "policy": "starter"})
    assert bad.status_code == 400
    assert not Agent.objects.exists()
    done = client.post(
        "/agents/new/",
        {"name": "claude-pr-bot", "principal_email": "lena@acme.dev", "policy": "starter"},
    )
    assert done.status_code == 200
    assert "no-store" in done["Cache-Control"]
    agent = Agent.objects.get(name="claude-pr-bot")
    page = done.content.decode()
    assert 'data-testid="new-agent-key">' in page
    card = Card.objects.filter(agent=agent).first()
    assert card.last4 in page
    assert card.number_ciphertext not in page
    # Shown once: the agent's page has only the last four digits.
    later = client.get(f"/agents/{agent.pk}/").content.decode()
    assert 'data-testid="new-agent-key"' not in later


def test_a_lead_provisions_for_the_teams_they_lead_only(alice, bob):
    from wallets.models import Agent

    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    client = signed_in(lead)
    form = client.get("/agents/new/").content.decode()
    assert '<select id="id_principal_email" name="principal_email" required>' in form
    assert "alice@example.com" in form
    assert "bob@example.com" not in form
    for email in ("bob@example.com", "someone-new@acme.dev"):
        refused = client.post(
            "/agents/new/", {"name": "sneaky", "principal_email": email, "policy": "starter"}
        )
        assert refused.status_code == 400
        assert "Choose the owner of a team you lead." in refused.content.decode()
    assert not Agent.objects.filter(name="sneaky").exists()
    done = client.post(
        "/agents/new/",
        {"name": "mine", "principal_email": "alice@example.com", "policy": "starter"},
    )
    assert done.status_code == 200
    assert Agent.objects.get(name="mine").principal_id == alice.agent.principal_id


def test_a_lead_of_no_team_is_told_so(db):
    client = signed_in(user_with("Engineering lead", "lena"))
    form = client.get("/agents/new/").content.decode()
    assert "You lead no team yet" in form
    refused = client.post(
        "/agents/new/", {"name": "x", "principal_email": "x@acme.dev", "policy": "starter"}
    )
    assert refused.status_code == 400


def test_organisation_wide_users_provision_for_anyone(db):
    from django.contrib.auth import get_user_model

    from wallets.models import Agent

    admin = get_user_model().objects.create_superuser("root", "root@acme.dev", PASSWORD)
    client = signed_in(admin)
    assert 'type="email"' in client.get("/agents/new/").content.decode()
    done = client.post(
        "/agents/new/",
        {"name": "new-team-bot", "principal_email": "new@acme.dev", "policy": "starter"},
    )
    assert done.status_code == 200
    assert Agent.objects.get(name="new-team-bot").principal.email == "new@acme.dev"


def test_a_viewer_cannot_provision(db):
    client = signed_in(user_with("Viewer"))
    assert client.get("/agents/new/").status_code == 403
    assert (
        client.post(
            "/agents/new/", {"name": "x", "principal_email": "x@acme.dev", "policy": "starter"}
        ).status_code
        == 403
    )


# --- Cards on the agent page: their page, their last use, issuing one -----------------


@pytest.fixture
def lena(alice):
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    return signed_in(lead)


def card_row(page: str, card) -> str:
    return page.split(f'data-testid="card-row-{card.pk}"')[1].split("</tr>")[0]


def test_each_card_links_to_its_page_and_shows_its_last_use(spent, network):
    alice, _ = spent
    used = card_for(alice, "openai")
    client = signed_in(user_with("Viewer"))
    page = client.get(f"/agents/{alice.agent.pk}/").content.decode()
    latest = Authorization.objects.filter(card=used).latest("decided_at").decided_at
    assert f'href="/cards/{used.pk}/"' in card_row(page, used)
    assert f"{latest:%Y-%m-%d %H:%M}" in card_row(page, used)
    unused = card_for(alice, "github")
    assert ">never<" in card_row(page, unused)
    # A decline is a use too (the latest attempt, whatever its decision).
    with time_machine.travel(timezone.now() + timedelta(minutes=5)):
        assert network.authorize(unused, "1.00", mcc="0000").json()["decision"] == "declined"
    page = client.get(f"/agents/{alice.agent.pk}/").content.decode()
    declined_at = Authorization.objects.get(card=unused).decided_at
    assert f"{declined_at:%Y-%m-%d %H:%M}" in card_row(page, unused)


def test_the_agent_page_costs_the_same_queries_however_many_cards_were_used(alice, lena, network):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert lena.get(f"/agents/{alice.agent.pk}/").status_code == 200
        return len(captured)

    assert network.authorize(card_for(alice, "openai"), "1.00").json()["decision"] == "approved"
    few = queries()
    for new in alice.cards:
        for _ in range(3):
            network.authorize(new.card, "1.00")
    for n in range(4):
        lena.post(
            f"/agents/{alice.agent.pk}/issue-card",
            {"vendor": "openai", "trace_id": f"PR-{n}", "lifetime": "1", "lifetime_unit": "hours"},
        )
    assert Card.objects.filter(agent=alice.agent).count() == 10
    assert queries() == few


def test_issuing_an_ephemeral_card_shows_its_number_once(alice, lena):
    response = lena.post(
        f"/agents/{alice.agent.pk}/issue-card",
        {
            "vendor": "openai",
            "monthly_cap": "25.50",
            "trace_id": "PR-77",
            "lifetime": "2",
            "lifetime_unit": "hours",
            "single_use": "1",
        },
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    card = Card.objects.get(agent=alice.agent, trace_id="PR-77")
    assert (card.is_ephemeral, card.single_use) == (True, True)
    assert card.monthly_cap == Money("25.50", "USD")
    assert abs(card.expires_at - (card.created_at + timedelta(hours=2))) < timedelta(seconds=5)
    page = response.content.decode()
    number = decrypt_number(card.number_ciphertext)
    assert f'data-testid="new-card-number">{number}<' in page
    assert 'data-testid="new-card-cvc">' in page
    assert f"{card.exp_month:02d}/{card.exp_year}" in page
    assert card.number_ciphertext not in page
    assert f'href="/cards/{card.pk}/"' in page
    event = CardEvent.objects.get(card=card, kind="issued")
    assert (event.actor, event.reason) == ("user:lena", "trace PR-77")
    audit = AuditEvent.objects.get(action=AuditAction.CARD_ISSUED, object_id=str(card.pk))
    assert audit.actor == "user:lena"
    assert audit.detail["monthly_cap"] == "25.50"
    # Shown once: the next load of the page has only the last four digits.
    again = lena.get(f"/agents/{alice.agent.pk}/").content.decode()
    assert number not in again
    assert 'data-testid="new-card' not in again
    assert f"•••• {card.last4}" in again
    assert number not in str(dict(lena.session.items()))  # nor kept in the session


def test_ephemeral_without_a_lifetime_gets_the_ephemeral_default(alice, lena):
    lena.post(f"/agents/{alice.agent.pk}/issue-card", {"vendor": "openai", "ephemeral": "1"})
    card = Card.objects.get(agent=alice.agent, vendor__slug="openai", is_ephemeral=True)
    assert card.trace_id == ""
    assert abs(card.expires_at - (card.created_at + timedelta(days=7))) < timedelta(seconds=5)


def test_a_standing_card_for_a_vendor_without_one_is_issued(alice, lena):
    response = lena.post(f"/agents/{alice.agent.pk}/issue-card", {"vendor": "gitlab"})
    assert response.status_code == 200
    card = Card.objects.get(agent=alice.agent, vendor__slug="gitlab")
    assert (card.is_ephemeral, card.expires_at, card.monthly_cap) == (False, None, None)


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"vendor": "openai"}, "vendor", "Agent already has an open OpenAI card"),
        ({"vendor": "no-such-vendor"}, "vendor", "Choose a vendor from the list."),
        ({"vendor": ""}, "vendor", "Choose a vendor from the list."),
        ({"vendor": "gitlab", "trace_id": "-bad id"}, "trace_id", "Up to 128 letters"),
        ({"vendor": "gitlab", "trace_id": "x" * 129}, "trace_id", "Up to 128 letters"),
        ({"vendor": "gitlab", "monthly_cap": "0"}, "monthly_cap", "greater than zero"),
        ({"vendor": "gitlab", "monthly_cap": "1.234"}, "monthly_cap", "at most 2 decimal"),
        ({"vendor": "gitlab", "monthly_cap": "-3"}, "monthly_cap", "decimal string"),
        ({"vendor": "gitlab", "lifetime": "soon"}, "lifetime", "A whole number of minutes"),
        ({"vendor": "gitlab", "lifetime": "0"}, "lifetime", "from 1 minute to 90 days"),
        (
            {"vendor": "gitlab", "lifetime": "2161", "lifetime_unit": "hours"},
            "lifetime",
            "from 1 minute to 90 days",
        ),
        ({"vendor": "gitlab", "lifetime": "5", "lifetime_unit": "weeks"}, "lifetime", "minutes"),
    ],
)
def test_bad_input_is_shown_at_its_field_and_nothing_is_issued(alice, lena, form, field, message):
    before = (Card.objects.count(), CardEvent.objects.count(), AuditEvent.objects.count())
    response = lena.post(f"/agents/{alice.agent.pk}/issue-card", form)
    assert response.status_code == 400
    page = response.content.decode()
    assert "no card was issued" in page
    errors = page.split(f'data-testid="issue-error-{field}">')[1].split("</p>")[0]
    assert message in errors.replace("&#x27;", "'")
    assert 'data-testid="new-card' not in page
    assert (Card.objects.count(), CardEvent.objects.count(), AuditEvent.objects.count()) == before


def test_issuing_a_card_needs_the_permission_and_the_team(alice, bob, lena, client):
    path = f"/agents/{alice.agent.pk}/issue-card"
    form = {"vendor": "gitlab"}
    assert client.post(path, form)["Location"].startswith("/accounts/login/")
    for role in ("Viewer", "Finance"):
        other = signed_in(user_with(role, role.lower()))
        assert (
            ">Issue card</button>" not in other.get(f"/agents/{alice.agent.pk}/").content.decode()
        )
        assert other.post(path, form).status_code == 403
    assert lena.post(f"/agents/{bob.agent.pk}/issue-card", form).status_code == 404
    assert lena.get(f"/agents/{alice.agent.pk}/issue-card").status_code == 405
    assert not Card.objects.filter(vendor__slug="gitlab").exists()
    assert ">Issue card</button>" in lena.get(f"/agents/{alice.agent.pk}/").content.decode()
