"""Each portal role against each page and each action, checked on the server: an
anonymous visitor is sent to sign in, a user without a role is refused, a viewer reads
and never writes, a lead acts on their own teams' agents and gets 404 for another
team's, Finance approves and edits policies and vendors, a superuser does everything."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from agentwallet.models import AuditEvent
from conftest import card_for
from wallets.models import TeamLead

PASSWORD = "matrix-password-1"
ROLES = ("anonymous", "no role", "viewer", "finance", "lead", "admin")
GROUPS = {"viewer": "Viewer", "finance": "Finance", "lead": "Engineering lead"}


def client_for(role: str, world: dict[str, Any]) -> Client:
    client = Client()
    if role == "anonymous":
        return client
    if role == "admin":
        User.objects.create_superuser(username="root", password=PASSWORD)
        assert client.login(username="root", password=PASSWORD)
        return client
    user = User.objects.create_user(username=role.replace(" ", "-"), password=PASSWORD)
    if role in GROUPS:
        user.groups.add(Group.objects.get(name=GROUPS[role]))
    if role == "lead":
        TeamLead.objects.create(user=user, principal_id=world["alice"].agent.principal_id)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def over_the_daily_cap(network, provisioned, trace: str) -> int:
    card = card_for(provisioned, "aws")
    assert network.authorize(card, "15.00", trace_id=trace).json()["decision"] == "approved"
    assert network.authorize(card, "484.00").json()["decision"] == "approved"
    declined = network.authorize(card, "5.00").json()
    assert declined["reason"] == "daily_cap_exceeded"
    return declined["approval_id"]


@pytest.fixture
def world(alice, bob, network) -> dict[str, Any]:
    """Alice's agent is the lead's team; Bob's is another team's."""
    return {
        "alice": alice,
        "bob": bob,
        "approval_a": over_the_daily_cap(network, alice, "PR-A"),
        "approval_b": over_the_daily_cap(network, bob, "PR-B"),
    }


def org_pages(world: dict[str, Any]) -> list[str]:
    return [
        "/",
        "/dashboard/daily/",
        "/dashboard/vendors/",
        "/dashboard/traces/",
        "/agents/",
        "/approvals/",
        "/policies/",
        "/policies/starter/",
        "/vendors/",
        "/ledger/",
        "/ledger/export.csv",
        "/traces/",
        "/audit/",
        "/reports/",
    ]


def team_pages(provisioned, trace: str) -> list[str]:
    return [
        f"/agents/{provisioned.agent.pk}/",
        f"/cards/{card_for(provisioned, 'aws').pk}/",
        f"/traces/{trace}/",
        f"/ledger/?agent={provisioned.agent.pk}",
    ]


@pytest.mark.parametrize("role", ROLES)
def test_every_page_for_every_role(world, role):
    client = client_for(role, world)
    own = team_pages(world["alice"], "PR-A")
    other = team_pages(world["bob"], "PR-B")
    answers = {
        url: client.get(url).status_code
        for url in [*org_pages(world), "/agents/new/", *own, *other]
    }
    if role == "anonymous":
        assert set(answers.values()) == {302}
        return
    if role == "no role":
        assert set(answers.values()) == {403}
        return
    for url in org_pages(world) + own:
        assert answers[url] == 200, (role, url)
    # Another team's agent, card and trace: a lead cannot tell them from missing ones.
    for url in other[:3]:
        assert answers[url] == (404 if role == "lead" else 200), (role, url)
    assert answers["/agents/new/"] == (200 if role in ("lead", "admin") else 403)


def test_the_ledger_of_another_team_is_empty_for_a_lead(world):
    client = client_for("lead", world)
    page = client.get(f"/ledger/?agent={world['bob'].agent.pk}").content.decode()
    assert "No entries match." in page
    exported = b"".join(client.get("/ledger/export.csv").streaming_content).decode()
    assert "alice-agent" in exported
    assert "bob-agent" not in exported


def actions(world: dict[str, Any], provisioned_name: str, approval: str) -> dict[str, tuple]:
    """name -> (path, data, the roles holding the permission)."""
    provisioned = world[provisioned_name]
    agent, card = provisioned.agent.pk, card_for(provisioned, "openai").pk
    return {
        "freeze card (agent page)": (
            f"/agents/{agent}/freeze-card",
            {"card": str(card), "reason": "matrix"},
            {"lead", "admin"},
        ),
        "freeze agent": (f"/agents/{agent}/freeze-agent", {"reason": "matrix"}, {"lead", "admin"}),
        "create key": (f"/agents/{agent}/create-key", {"name": "matrix"}, {"lead", "admin"}),
        "issue card": (
            f"/agents/{agent}/issue-card",
            {"vendor": "openai", "ephemeral": "on", "trace_id": "PR-M"},
            {"lead", "admin"},
        ),
        "freeze card (card page)": (
            f"/cards/{card}/freeze",
            {"reason": "matrix"},
            {"lead", "admin"},
        ),
        "set card cap": (f"/cards/{card}/cap", {"monthly_cap": "50.00"}, {"lead", "admin"}),
        "approve": (
            f"/approvals/{world[approval]}/approve",
            {},
            {"lead", "finance", "admin"},
        ),
        "deny": (f"/approvals/{world[approval]}/deny", {}, {"lead", "finance", "admin"}),
    }


ORG_ACTIONS = {
    "edit policy": ("/policies/starter/", {"name": "Starter"}, {"finance", "admin"}),
    "new policy": ("/policies/", {"slug": "m", "name": "M"}, {"finance", "admin"}),
    "add vendor": (
        "/vendors/",
        {"slug": "matrix-co", "name": "Matrix", "mccs": "7372"},
        {"finance", "admin"},
    ),
    "provision agent": (
        "/agents/new/",
        {"name": "m", "principal_email": "alice@example.com", "policy": "starter"},
        {"lead", "admin"},
    ),
}
TEAM_ACTIONS = [
    "freeze card (agent page)",
    "freeze agent",
    "create key",
    "issue card",
    "freeze card (card page)",
    "set card cap",
    "approve",
    "deny",
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", TEAM_ACTIONS)
def test_team_actions_for_every_role(world, role, action):
    client = client_for(role, world)
    path, data, holders = actions(world, "alice", "approval_a")[action]
    before = AuditEvent.objects.count()
    status = client.post(path, data).status_code
    if role == "anonymous":
        assert status == 302
    elif role in holders:
        assert status in (200, 302), (action, role, status)
        assert AuditEvent.objects.count() > before, "the action went through a service"
    else:
        assert status == 403, (action, role, status)
    if role not in holders:
        assert AuditEvent.objects.count() == before  # refused: nothing written


@pytest.mark.parametrize("action", TEAM_ACTIONS)
def test_a_lead_acting_on_another_teams_agent_gets_404(world, action):
    client = client_for("lead", world)
    path, data, _ = actions(world, "bob", "approval_b")[action]
    before = AuditEvent.objects.count()
    assert client.post(path, data).status_code == 404
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ORG_ACTIONS))
def test_organisation_actions_for_every_role(world, role, action):
    client = client_for(role, world)
    path, data, holders = ORG_ACTIONS[action]
    status = client.post(path, data).status_code
    if role == "anonymous":
        assert status == 302
    elif role in holders:
        # Allowed: saved (302), or the partial form's inline errors (400): never refused.
        assert status in (200, 302, 400), (action, role, status)
    else:
        assert status == 403, (action, role, status)


def test_a_post_without_the_csrf_token_is_refused(world):
    client = Client(enforce_csrf_checks=True)
    User.objects.create_superuser(username="root", password=PASSWORD)
    assert client.login(username="root", password=PASSWORD)
    agent = world["alice"].agent.pk
    response = client.post(f"/agents/{agent}/freeze-agent", {"reason": "forged"})
    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action="agent.frozen").exists()
