"""The portal's sign-in, roles and dashboard (server side; the browser tests drive the
same pages in chromium)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from agentwallet.portal.selectors import DASHBOARD_PANELS
from conftest import card_for
from wallets.models import TeamLead

PASSWORD = "portal-test-password-1"


def user_with(role: str | None, username: str = "someone") -> User:
    user = User.objects.create_user(username=username, password=PASSWORD)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def signed_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_every_portal_page_needs_a_signed_in_user(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_sign_in_and_out(db):
    user_with("Viewer", "vera")
    client = Client()
    page = client.get("/accounts/login/?next=/")
    assert page.status_code == 200
    assert b'<label for="id_username">Username</label>' in page.content
    wrong = client.post("/accounts/login/", {"username": "vera", "password": "nope", "next": "/"})
    assert wrong.status_code == 200
    assert b"do not match" in wrong.content
    right = client.post("/accounts/login/", {"username": "vera", "password": PASSWORD, "next": "/"})
    assert right.status_code == 302
    assert right["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405  # logout is a POST
    out = client.post("/accounts/logout/")
    assert out["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_roles_are_groups_with_their_permissions(db):
    def perms(name: str) -> set[str]:
        group = Group.objects.get(name=name)
        return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}

    finance, lead, viewer = perms("Finance"), perms("Engineering lead"), perms("Viewer")
    assert {
        "approvals.approve_requests",
        "policies.change_policy",
        "policies.add_vendor",
    } <= finance
    assert {"approvals.approve_requests", "wallets.add_agent", "cards.change_card"} <= lead
    assert "policies.change_policy" not in lead
    assert viewer
    assert all(p.split(".")[1].startswith("view_") for p in viewer)
    assert "ledger.view_ledgerentry" in viewer


def test_a_user_without_a_role_is_refused(db):
    response = signed_in(user_with(None)).get("/")
    assert response.status_code == 403


@pytest.fixture
def two_teams(alice, bob, network):
    assert network.authorize(card_for(alice, "openai"), "12.50").json()["decision"] == "approved"
    assert network.authorize(card_for(bob, "openai"), "3.25").json()["decision"] == "approved"
    return alice, bob


def test_the_dashboard_shows_spend_from_the_counters(two_teams):
    client = signed_in(user_with("Finance"))
    page = client.get("/").content.decode()
    assert "<h1>Dashboard</h1>" in page
    assert 'data-testid="day-spent-USD">15.75 <span class="cur">USD</span>' in page
    assert 'data-testid="month-spent-USD">15.75' in page
    assert "alice-agent" in page
    assert "bob-agent" in page


def test_a_lead_sees_only_the_teams_they_lead(two_teams):
    alice, _ = two_teams
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    page = signed_in(lead).get("/").content.decode()
    assert "alice-agent" in page
    assert "bob-agent" not in page
    assert 'data-testid="day-spent-USD">12.50' in page
    assert "The agents of the teams you lead" in page


def test_an_htmx_refresh_gets_the_panels_only(two_teams):
    client = signed_in(user_with("Viewer"))
    fragment = client.get("/", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment
    assert 'data-testid="day-spent-USD"' in fragment


def test_the_dashboard_shows_declines_frozen_cards_and_pending_approvals(alice, network):
    from cards.services import card_freeze
    from wallets.actors import Actor

    card = card_for(alice, "aws")
    network.authorize(card, "499.00")
    network.authorize(card, "5.00")  # over the daily cap: a decline and an approval request
    card_freeze(card=card_for(alice, "github"), actor=Actor.system("test"), reason="test")
    page = signed_in(user_with("Viewer")).get("/").content.decode()
    assert "daily_cap_exceeded" in page
    assert "frozen</span> alice-agent" in page
    assert "Nothing waits for a decision." not in page


def test_the_dashboard_costs_the_same_queries_whatever_the_number_of_agents(provision, network):
    client = signed_in(user_with("Finance"))

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            for url in ["/", *(f"/dashboard/{panel}/" for panel in DASHBOARD_PANELS)]:
                assert client.get(url).status_code == 200
        return len(captured)

    first = provision(name="a0", email="a0@example.com")
    network.authorize(card_for(first, "openai"), "1.00")
    few = queries()
    for n in range(1, 6):
        more = provision(name=f"a{n}", email=f"a{n}@example.com")
        network.authorize(card_for(more, "openai"), "1.00")
    assert queries() == few
