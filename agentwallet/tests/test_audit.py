"""The audit journal: each service that changes a money control writes one row with
who, what and why; `/audit/` reads them, filtered, in the user's scope."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agentwallet.models import AuditAction, AuditEvent
from agentwallet.tests.test_portal import signed_in, user_with
from approvals.models import ApprovalRequest
from approvals.services import approval_deny, approval_grant, approval_request_ask, approvals_expire
from cards.services import (
    agent_cards_freeze,
    agent_cards_unfreeze,
    card_freeze,
    card_merchant_learn,
    card_merchant_lock_reset,
    card_unfreeze,
)
from conftest import card_for
from policies.models import Policy
from policies.services import policy_update
from wallets.actors import Actor
from wallets.models import TeamLead
from wallets.services import api_key_create, api_key_revoke

LENA = Actor(label="user:lena", is_staff=False)


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_provisioning_writes_one_row_naming_the_cards_and_key(alice):
    event = AuditEvent.objects.get()
    assert event.action == AuditAction.AGENT_PROVISIONED
    assert event.actor == "test"
    assert event.agent_id == alice.agent.pk
    assert event.detail["policy"] == "starter"
    assert event.detail["key_prefix"] == alice.api_key.prefix
    assert len(event.detail["cards"]) == len(alice.cards) == 6


def test_card_freeze_and_unfreeze_are_recorded_with_who_and_why(alice):
    card = card_for(alice, "openai")
    card_freeze(card=card, actor=LENA, reason="runaway loop in PR-9")
    card_freeze(card=card, actor=LENA, reason="again")  # already frozen: nothing new
    card_unfreeze(card=card, actor=LENA, reason="fixed")
    frozen, unfrozen = (
        AuditEvent.objects.filter(agent=alice.agent)
        .exclude(action=AuditAction.AGENT_PROVISIONED)
        .order_by("id")
    )
    assert (frozen.action, frozen.actor, frozen.reason) == (
        "card.frozen",
        "user:lena",
        "runaway loop in PR-9",
    )
    assert frozen.subject == f"card ••{card.last4} (OpenAI)"
    assert frozen.object_id == str(card.pk)
    assert (unfrozen.action, unfrozen.reason) == ("card.unfrozen", "fixed")


def test_the_kill_switch_writes_one_row_for_all_cards(alice):
    agent_cards_freeze(agent=alice.agent, actor=LENA, reason="prompt injection")
    agent_cards_unfreeze(agent=alice.agent, actor=LENA)
    assert actions() == ["agent.provisioned", "agent.frozen", "agent.unfrozen"]
    frozen = AuditEvent.objects.get(action=AuditAction.AGENT_FROZEN)
    assert frozen.reason == "prompt injection"
    assert len(frozen.detail["cards"]) == 6


def test_keys_created_and_revoked(alice):
    key, _ = api_key_create(name="ci", agent=alice.agent, created_by=LENA)
    api_key_revoke(api_key=key, actor=LENA)
    api_key_revoke(api_key=key, actor=LENA)  # already revoked: nothing new
    created, revoked = AuditEvent.objects.filter(action__startswith="key.").order_by("id")
    assert (created.action, created.actor, created.detail["prefix"]) == (
        "key.created",
        "user:lena",
        key.prefix,
    )
    assert revoked.action == "key.revoked"
    assert revoked.agent_id == alice.agent.pk


def test_approval_decisions_and_the_cap_bump(alice):
    asked = approval_request_ask(agent=alice.agent, scope="daily", amount=Decimal("50"), reason="x")
    approval_grant(request=asked, actor_label="user:lena", via="portal", amount=Decimal("40"))
    granted, bumped = AuditEvent.objects.filter(
        action__in=["approval.granted", "cap.bumped"]
    ).order_by("id")
    assert granted.detail == {
        "via": "portal",
        "requested": "50.00",
        "approved": "40.00",
        "currency": "USD",
    }
    assert bumped.detail["amount"] == "40.00"
    assert bumped.detail["approval_id"] == str(asked.pk)

    other = approval_request_ask(
        agent=alice.agent, scope="monthly", amount=Decimal("9"), reason="y"
    )
    approval_deny(request=other, actor_label="slack:U1", via="slack", note="not now")
    denied = AuditEvent.objects.get(action="approval.denied")
    assert (denied.actor, denied.reason, denied.detail["via"]) == ("slack:U1", "not now", "slack")


def test_an_expired_request_is_recorded_as_the_systems_decision(alice):
    asked = approval_request_ask(agent=alice.agent, scope="daily", amount=Decimal("5"), reason="x")
    ApprovalRequest.objects.filter(pk=asked.pk).update(expires_at=timezone.now())
    assert approvals_expire(now=timezone.now() + timedelta(seconds=1)) == 1
    assert AuditEvent.objects.get(action="approval.expired").actor == "system"


def test_a_policy_change_names_each_field_from_and_to(starter_policy):
    policy_update(
        policy=starter_policy,
        changes={"daily_cap": Decimal("400"), "name": "Starter"},
        actor=LENA,
    )
    policy_update(policy=starter_policy, changes={"name": "Starter"}, actor=LENA)  # no change
    event = AuditEvent.objects.get(action="policy.changed")
    assert event.detail == {
        "daily_cap": {
            "from": {"amount": "500.00", "currency": "USD"},
            "to": {"amount": "400.00", "currency": "USD"},
        }
    }
    assert dict(event.detail_items()) == {"daily cap": "500.00 USD → 400.00 USD"}
    assert event.agent_id is None


def test_vendors_and_policies_made_through_the_api_are_audited(staff_client):
    vendor = staff_client.post(
        "/api/vendors",
        {"slug": "acme-gpu", "name": "Acme GPU", "mccs": ["7372"]},
        format="json",
    )
    assert vendor.status_code == 201
    policy = staff_client.post(
        "/api/policies",
        {
            "slug": "lean",
            "name": "Lean",
            "currency": "USD",
            "daily_cap": {"amount": "10.00", "currency": "USD"},
            "monthly_cap": {"amount": "100.00", "currency": "USD"},
        },
        format="json",
    )
    assert policy.status_code == 201, policy.json()
    assert actions() == ["key.created", "vendor.created", "policy.created"]  # the staff key first
    assert AuditEvent.objects.get(action="vendor.created").actor.startswith("staff")


def test_a_merchant_lock_reset_keeps_the_merchant_it_forgot(alice):
    card = card_for(alice, "openai")
    assert card_merchant_learn(card_id=card.pk, merchant_id="acq_123")
    card_merchant_lock_reset(card=card, actor=LENA, reason="processor moved")
    event = AuditEvent.objects.get(action="card.lock_reset")
    assert event.detail == {"learned_merchant_id": "acq_123"}


def test_a_freeze_without_a_reason_cannot_be_written():
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        AuditEvent.objects.create(actor="x", action="card.frozen", subject="card")


pytestmark = pytest.mark.django_db


# The page -------------------------------------------------------------------------


@pytest.fixture
def two_teams_audited(alice, bob):
    card_freeze(card=card_for(alice, "openai"), actor=LENA, reason="alice runaway")
    card_freeze(card=card_for(bob, "openai"), actor=LENA, reason="bob runaway")
    policy_update(
        policy=Policy.objects.get(slug="starter"), changes={"daily_cap": Decimal("450")}, actor=LENA
    )
    return alice, bob


def test_the_audit_page_lists_who_what_and_why(two_teams_audited):
    page = signed_in(user_with("Viewer")).get("/audit/")
    assert page.status_code == 200
    assert "<h1>Audit</h1>" in page.content.decode()
    html = page.content.decode().split('data-testid="audit-table"')[1]
    assert "alice runaway" in html
    assert "bob runaway" in html
    assert "user:lena" in html
    assert "500.00 USD → 450.00 USD" in html
    assert html.index("Policy changed") < html.index("bob runaway") < html.index("alice runaway")


def test_an_htmx_request_gets_the_rows_only(two_teams_audited):
    fragment = signed_in(user_with("Finance")).get(
        "/audit/?family=card.", headers={"HX-Request": "true"}
    )
    html = fragment.content.decode()
    assert "<html" not in html
    assert "alice runaway" in html
    assert "Policy changed" not in html
    assert "HX-Request" in fragment["Vary"]


def test_filters_by_action_actor_subject_agent_and_dates(two_teams_audited):
    _, bob = two_teams_audited
    client = signed_in(user_with("Finance"))

    def shown(query: str) -> set[str]:
        html = client.get(f"/audit/?{query}", headers={"HX-Request": "true"}).content.decode()
        return {word for word in ("alice runaway", "bob runaway", "Policy changed") if word in html}

    assert shown("action=card.frozen") == {"alice runaway", "bob runaway"}
    assert shown("action=policy.changed") == {"Policy changed"}
    assert shown("actor=LENA") == {"alice runaway", "bob runaway", "Policy changed"}
    assert shown("actor=someone-else") == set()
    assert shown(f"agent={bob.agent.pk}") == {"bob runaway"}
    assert shown("q=starter") == {"Policy changed"}
    assert shown("since=2999-01-01") == set()
    assert shown("until=2999-01-01&since=2000-01-01") == {
        "alice runaway",
        "bob runaway",
        "Policy changed",
    }


@pytest.mark.parametrize(
    "query",
    ["since=yesterday", "action=card.melted", "agent=not-a-uuid", "before=²", "before=9" * 30],
)
def test_bad_filters_answer_a_page_not_an_error(two_teams_audited, query):
    response = signed_in(user_with("Finance")).get(f"/audit/?{query}")
    assert response.status_code == 200


def test_a_bad_filter_says_which_and_shows_nothing(two_teams_audited):
    html = signed_in(user_with("Finance")).get("/audit/?since=yesterday").content.decode()
    assert 'role="alert">since:' in html
    assert "alice runaway" not in html


def test_a_lead_sees_their_teams_rows_and_the_organisation_wide_ones(two_teams_audited):
    alice, _ = two_teams_audited
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    html = signed_in(lead).get("/audit/", headers={"HX-Request": "true"}).content.decode()
    assert "alice runaway" in html
    assert "bob runaway" not in html
    assert "Policy changed" in html


def test_the_audit_page_needs_a_role(db):
    from django.test import Client

    assert Client().get("/audit/")["Location"] == "/accounts/login/?next=/audit/"
    assert signed_in(user_with(None)).get("/audit/").status_code == 403


def test_pages_go_back_by_keyset_with_the_same_queries(alice):
    card = card_for(alice, "openai")
    for n in range(60):
        card_freeze(card=card, actor=LENA, reason=f"freeze {n:02d}")
        card_unfreeze(card=card, actor=LENA)
    client = signed_in(user_with("Finance"))

    def load(url: str) -> tuple[str, int]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        return response.content.decode(), len(captured)

    first, first_queries = load("/audit/?action=card.frozen")
    assert "freeze 59" in first
    assert "freeze 10" in first
    assert "freeze 09" not in first
    older = first.split("before=")[1].split('"')[0]
    second, second_queries = load(f"/audit/?action=card.frozen&before={older}")
    assert "freeze 09" in second
    assert "freeze 10" not in second
    assert "Older events" not in second
    assert first_queries == second_queries
    _, few_queries = load("/audit/?action=agent.provisioned")
    assert few_queries == first_queries


def test_a_freeze_in_the_portal_is_audited_as_the_signed_in_user(alice):
    lead = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=lead, principal_id=alice.agent.principal_id)
    card = card_for(alice, "aws")
    response = signed_in(lead).post(
        f"/agents/{alice.agent.pk}/freeze-card", {"card": str(card.pk), "reason": "cost spike"}
    )
    assert response.status_code in (200, 302)
    event = AuditEvent.objects.get(action="card.frozen")
    assert (event.actor, event.reason) == ("user:lena", "cost spike")
