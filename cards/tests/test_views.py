"""The portal's card page: the card, its caps (the budget API's figures), locks,
authorizations (filtered, keyset pages, an HTMX fragment), postings and history; the
kill switch, the merchant lock reset and the editable monthly cap, each checked on the
server: anonymous to sign-in, a viewer or Finance read-only, another team's card 404."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from agentwallet.models import AuditAction, AuditEvent
from agentwallet.tests.test_portal import signed_in, user_with
from cards.models import Card, CardEvent, CardEventKind
from cards.services import card_cap_update, card_close
from conftest import card_for
from ledger.models import Authorization
from wallets.actors import Actor
from wallets.models import TeamLead


@pytest.fixture
def lead(alice):
    user = user_with("Engineering lead", "lena")
    TeamLead.objects.create(user=user, principal_id=alice.agent.principal_id)
    return signed_in(user)


@pytest.fixture
def openai_card(alice):
    return card_for(alice, "openai")


def page_of(card: Card) -> str:
    return f"/cards/{card.pk}/"


def changes(card: Card) -> tuple:
    """What a refused action must leave as it was."""
    card.refresh_from_db()
    return (
        card.status,
        card.monthly_cap,
        card.learned_merchant_id,
        CardEvent.objects.filter(card=card).count(),
        AuditEvent.objects.count(),
    )


# --- The page -------------------------------------------------------------------------


def test_the_page_shows_the_card_its_authorizations_postings_and_history(
    alice, lead, openai_card, network
):
    approved = network.authorize(openai_card, "12.50").json()
    assert approved["decision"] == "approved"
    assert network.capture(approved["id"], "12.00").status_code == 201
    lead.post(f"{page_of(openai_card)}freeze", {"reason": "prompt injection suspected"})
    assert network.authorize(openai_card, "3.00").json()["reason"] == "card_frozen"
    page = lead.get(page_of(openai_card))
    assert page.status_code == 200
    html = page.content.decode()
    assert f"OpenAI card •••• {openai_card.last4}" in html
    assert 'data-testid="card-status">frozen' in html
    assert "Standing card" in html
    assert openai_card.issuer in html
    # Every authorization, the attempt while frozen too, with its reason.
    assert "<code>card_frozen</code>" in html
    assert "12.50 USD" in html
    # The capture, and the release of the rest of the hold.
    postings = html.split('data-testid="card-postings"')[1].split("</table>")[0]
    assert "Capture" in postings
    assert "12.00 USD" in postings
    assert "Release" in postings
    # The history: issued, then frozen by whom and why.
    events = html.split('data-testid="card-events"')[1].split("</table>")[0]
    assert "Frozen" in events
    assert "user:lena" in events
    assert "prompt injection suspected" in events
    assert "Issued" in events
    assert f'href="/ledger/?card={openai_card.pk}"' in html
    assert ">Unfreeze</button>" in html
    assert ">Save</button>" in html


def test_a_declined_charge_names_the_cap_that_stopped_it(alice, lead, openai_card, network):
    card_cap_update(card=openai_card, monthly_cap=Decimal("10.00"), actor=Actor.system("test"))
    declined = network.authorize(openai_card, "25.00").json()
    assert declined["reason"] == "card_cap_exceeded"
    html = lead.get(f"{page_of(openai_card)}?decision=declined").content.decode()
    row = html.split('data-testid="card-authorizations"')[1].split("</tr>")[1]
    assert "<code>card_cap_exceeded</code>" in row
    assert "card cap" in row
    assert "10.00 USD" in row
    assert "10.00</span> left" in row


def test_the_caps_are_the_budget_apis_card_entry(alice, lead, openai_card, network, staff_client):
    card_cap_update(card=openai_card, monthly_cap=Decimal("300.00"), actor=Actor.system("test"))
    assert network.authorize(openai_card, "42.10").json()["decision"] == "approved"
    other = card_for(alice, "anthropic")
    assert network.authorize(other, "5.00").json()["decision"] == "approved"
    budget = staff_client.get(f"/api/agents/{alice.agent.pk}/budget").json()
    entry = next(card for card in budget["cards"] if card["card_id"] == str(openai_card.pk))
    html = lead.get(page_of(openai_card)).content.decode()

    def shown(testid: str) -> str:
        return html.split(f'data-testid="{testid}">')[1].split("<")[0].strip()

    assert shown("card-cap") == entry["card_cap"]["cap"]["amount"] == "300.00"
    assert shown("card-cap-spent") == entry["card_cap"]["spent"]["amount"] == "42.10"
    assert shown("card-cap-remaining") == entry["card_cap"]["remaining"]["amount"] == "257.90"
    assert shown("vendor-cap") == entry["vendor_cap"]["cap"]["amount"] == "2000.00"
    assert shown("vendor-cap-spent") == entry["vendor_cap"]["spent"]["amount"] == "42.10"
    assert shown("vendor-cap-remaining") == entry["vendor_cap"]["remaining"]["amount"]


def test_the_locks_show_which_is_on(alice, lead, network):
    snowflake = card_for(alice, "snowflake")  # a vendor without verified merchant ids
    html = lead.get(page_of(snowflake)).content.decode()
    locks = html.split('data-testid="card-locks"')[1].split("</table>")[0]
    mcc_row = locks.split('data-testid="lock-mcc"')[1].split("</tr>")[0]
    assert "badge ok" in mcc_row
    assert all(f"<code>{mcc}</code>" in mcc_row for mcc in snowflake.allowed_mccs)
    learned_row = locks.split('data-testid="lock-learned_merchant_id"')[1].split("</tr>")[0]
    assert "Nothing learned yet" in learned_row
    assert ">off<" in learned_row
    assert "Reset merchant lock" not in html  # nothing learned, nothing to reset
    assert network.authorize(snowflake, "5.00").json()["decision"] == "approved"
    html = lead.get(page_of(snowflake)).content.decode()
    learned_row = html.split('data-testid="lock-learned_merchant_id"')[1].split("</tr>")[0]
    assert "<code>mid-snowflake</code>" in learned_row
    assert ">on<" in learned_row
    vendor_ids = html.split('data-testid="lock-vendor_merchant_ids"')[1].split("</tr>")[0]
    assert "The vendor has none verified." in vendor_ids
    assert ">Reset merchant lock</button>" in html


def test_the_authorizations_fragment_filters_and_pages_by_keyset(alice, lead, openai_card, network):
    for _ in range(52):
        assert network.authorize(openai_card, "1.00").json()["decision"] == "approved"
    card_cap_update(card=openai_card, monthly_cap=Decimal("52.00"), actor=Actor.system("test"))
    for _ in range(3):
        assert network.authorize(openai_card, "1.00").json()["reason"] == "card_cap_exceeded"
    hx = {"HX-Request": "true"}
    first = lead.get(page_of(openai_card), headers=hx)
    assert "HX-Request" in first.get("Vary", "")
    fragment = first.content.decode()
    assert "<html" not in fragment
    assert fragment.count('data-testid="authorization-') == 50
    newest = list(Authorization.objects.filter(card=openai_card).order_by("-decided_at", "-id"))
    assert f'data-testid="authorization-{newest[0].pk}"' in fragment  # newest first
    assert f"before={newest[49].pk}" in fragment
    second = lead.get(f"{page_of(openai_card)}?before={newest[49].pk}", headers=hx)
    rest = second.content.decode()
    assert rest.count('data-testid="authorization-') == 5
    assert all(f'data-testid="authorization-{a.pk}"' in rest for a in newest[50:])
    assert "Newest authorizations" in rest
    assert "Older authorizations" not in rest
    declined = lead.get(f"{page_of(openai_card)}?decision=declined", headers=hx).content.decode()
    assert declined.count('data-testid="authorization-') == 3
    assert "approved</span>" not in declined
    approved = lead.get(f"{page_of(openai_card)}?decision=approved", headers=hx).content.decode()
    assert approved.count('data-testid="authorization-') == 50
    assert "declined</span>" not in approved
    # Nonsense in the query string is ignored, not a 500.
    assert lead.get(f"{page_of(openai_card)}?before=²&decision=x").status_code == 200
    # The full page has the same fragment inside it.
    full = lead.get(page_of(openai_card)).content.decode()
    assert '<div id="card-authorizations">' in full
    assert full.count('data-testid="authorization-') == 50


def test_the_page_costs_the_same_queries_with_1_or_60_authorizations(
    alice, lead, openai_card, network
):
    assert network.authorize(openai_card, "1.00").json()["decision"] == "approved"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert lead.get(page_of(openai_card)).status_code == 200
        return len(captured)

    few = queries()
    approved = [network.authorize(openai_card, "1.00").json() for _ in range(40)]
    for charge in approved[:10]:
        network.capture(charge["id"], "1.00")
    lead.post(f"{page_of(openai_card)}freeze", {"reason": "enough"})
    for _ in range(19):
        network.authorize(openai_card, "1.00")
    assert Authorization.objects.filter(card=openai_card).count() == 60
    assert queries() == few
    # Pinned: session and user (2), scope: groups and teams (2), the card (1), the
    # budget's reads: zone, cards, traces, spend, bumps, vendor caps (6), the page of
    # authorizations, the postings, the events (3), the user's and groups' permissions (2).
    assert few == 16


# --- Who may see and do what ----------------------------------------------------------

ACTIONS = {
    "freeze": {"reason": "x"},
    "unfreeze": {},
    "reset-lock": {"reason": "x"},
    "cap": {"monthly_cap": "5.00"},
}


def test_anonymous_users_are_sent_to_sign_in(client, openai_card):
    response = client.get(page_of(openai_card))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    for action, data in ACTIONS.items():
        posted = client.post(f"{page_of(openai_card)}{action}", data)
        assert posted.status_code == 302
        assert posted["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("role", ["Viewer", "Finance"])
def test_viewers_and_finance_see_the_card_but_cannot_change_it(role, alice, openai_card):
    client = signed_in(user_with(role))
    html = client.get(page_of(openai_card)).content.decode()
    assert f"•••• {openai_card.last4}" in html
    assert ">Freeze</button>" not in html
    assert ">Save</button>" not in html
    assert "needs the cards.change_card permission" in html
    before = changes(openai_card)
    for action, data in ACTIONS.items():
        assert client.post(f"{page_of(openai_card)}{action}", data).status_code == 403
    assert changes(openai_card) == before


def test_a_lead_gets_404_for_another_teams_card_even_by_a_forged_post(alice, bob, lead):
    theirs = card_for(bob, "openai")
    assert lead.get(page_of(theirs)).status_code == 404
    assert lead.get(page_of(theirs), headers={"HX-Request": "true"}).status_code == 404
    before = changes(theirs)
    for action, data in ACTIONS.items():
        assert lead.post(f"{page_of(theirs)}{action}", data).status_code == 404
    assert changes(theirs) == before
    assert lead.get("/cards/not-a-uuid/").status_code == 404
    assert lead.post("/cards/not-a-uuid/freeze", {"reason": "x"}).status_code == 404
    assert lead.get("/cards/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_a_user_without_a_role_is_refused(alice, openai_card):
    client = signed_in(user_with(None))
    assert client.get(page_of(openai_card)).status_code == 403


def test_a_superuser_may_change_any_card(alice, openai_card):
    User.objects.create_superuser(username="root", password="portal-test-password-1")
    client = signed_in(User.objects.get(username="root"))
    client.post(f"{page_of(openai_card)}cap", {"monthly_cap": "75.00"})
    openai_card.refresh_from_db()
    assert openai_card.monthly_cap == Money("75.00", "USD")


# --- Freeze, unfreeze, reset the merchant lock ----------------------------------------


def test_freezing_asks_why_and_is_recorded(alice, lead, openai_card, network):
    path = f"{page_of(openai_card)}freeze"
    before = changes(openai_card)
    refused = lead.post(path, {"reason": "  "}, follow=True)
    assert "Nothing changed." in refused.content.decode()
    assert changes(openai_card) == before
    done = lead.post(path, {"reason": "runaway loop"}, follow=True)
    assert "Frozen" in done.content.decode()
    openai_card.refresh_from_db()
    assert openai_card.status == "frozen"
    audit = AuditEvent.objects.get(action=AuditAction.CARD_FROZEN)
    assert (audit.actor, audit.reason, audit.object_id) == (
        "user:lena",
        "runaway loop",
        str(openai_card.pk),
    )
    assert network.authorize(openai_card, "1.00").json()["reason"] == "card_frozen"
    lead.post(f"{page_of(openai_card)}unfreeze", {"reason": "fixed"})
    openai_card.refresh_from_db()
    assert openai_card.status == "active"
    assert CardEvent.objects.filter(card=openai_card, kind="unfrozen").get().reason == "fixed"


def test_resetting_the_merchant_lock_asks_why_and_forgets_the_merchant(alice, lead, network):
    snowflake = card_for(alice, "snowflake")
    assert network.authorize(snowflake, "5.00").json()["decision"] == "approved"
    moved = network.authorize(snowflake, "5.00", merchant_network_id="mid-elsewhere").json()
    assert moved["merchant_lock"] == "learned_merchant_id"
    path = f"{page_of(snowflake)}reset-lock"
    before = changes(snowflake)
    assert "Nothing changed." in lead.post(path, {"reason": ""}, follow=True).content.decode()
    assert changes(snowflake) == before
    lead.post(path, {"reason": "moved to another processor"})
    snowflake.refresh_from_db()
    assert snowflake.learned_merchant_id == ""
    audit = AuditEvent.objects.get(action=AuditAction.CARD_LOCK_RESET)
    assert (audit.actor, audit.reason) == ("user:lena", "moved to another processor")
    assert audit.detail == {"learned_merchant_id": "mid-snowflake"}
    again = network.authorize(snowflake, "5.00", merchant_network_id="mid-elsewhere").json()
    assert again["decision"] == "approved"


# --- The monthly cap ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0", "Amount must be greater than zero."),
        ("0.00", "Amount must be greater than zero."),
        ("-5", "Amount must be a decimal string"),
        ("12.345", "USD amounts have at most 2 decimal places."),
        ("abc", "Amount must be a decimal string"),
        ("", "Amount must be a decimal string"),
        ("1e3", "Amount must be a decimal string"),
        ("1000000000000", "Amount must be at most"),
    ],
)
def test_a_bad_cap_is_refused_at_the_field_and_nothing_changes(
    alice, lead, openai_card, value, error
):
    card_cap_update(card=openai_card, monthly_cap=Decimal("80.00"), actor=Actor.system("test"))
    before = changes(openai_card)
    response = lead.post(f"{page_of(openai_card)}cap", {"monthly_cap": value, "reason": "r"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="cap-error"' in html
    assert error in html
    assert f'value="{value}"' in html  # kept to be corrected
    assert 'aria-invalid="true"' in html
    assert changes(openai_card) == before


def test_saving_the_cap_is_recorded_with_who_and_why(alice, lead, openai_card):
    response = lead.post(
        f"{page_of(openai_card)}cap", {"monthly_cap": "150.5", "reason": "eval week"}
    )
    assert response.status_code == 302
    assert response["Location"] == page_of(openai_card)
    openai_card.refresh_from_db()
    assert openai_card.monthly_cap == Money("150.50", "USD")
    audit = AuditEvent.objects.get(action=AuditAction.CARD_CAP_CHANGED)
    assert (audit.actor, audit.reason, audit.object_id, audit.agent_id) == (
        "user:lena",
        "eval week",
        str(openai_card.pk),
        alice.agent.pk,
    )
    assert audit.detail == {"from": None, "to": "150.50", "currency": "USD"}
    event = CardEvent.objects.get(card=openai_card, kind=CardEventKind.CAP_CHANGED)
    assert (event.actor, event.reason) == ("user:lena", "none → 150.50 USD: eval week")
    html = lead.get(page_of(openai_card)).content.decode()
    assert "Saved: the card&#x27;s monthly cap is 150.50 USD." in html
    assert 'data-testid="card-cap">150.50' in html
    # The same cap again changes nothing and records nothing.
    lead.post(f"{page_of(openai_card)}cap", {"monthly_cap": "150.50"})
    assert AuditEvent.objects.filter(action=AuditAction.CARD_CAP_CHANGED).count() == 1
    lead.post(f"{page_of(openai_card)}cap", {"monthly_cap": "90"})
    second = AuditEvent.objects.filter(action=AuditAction.CARD_CAP_CHANGED).latest("at")
    assert second.detail == {"from": "150.50", "to": "90.00", "currency": "USD"}


def test_a_lowered_cap_declines_the_next_charge_above_it(alice, lead, openai_card, network):
    assert network.authorize(openai_card, "30.00").json()["decision"] == "approved"
    lead.post(f"{page_of(openai_card)}cap", {"monthly_cap": "40.00"})
    over = network.authorize(openai_card, "10.01").json()
    assert over["decision"] == "declined"
    assert over["reason"] == "card_cap_exceeded"
    assert over["cap"]["scope"] == "card"
    assert network.authorize(openai_card, "10.00").json()["decision"] == "approved"
    # Raised again, the same charge passes.
    lead.post(f"{page_of(openai_card)}cap", {"monthly_cap": "100.00"})
    assert network.authorize(openai_card, "10.01").json()["decision"] == "approved"


def test_a_closed_cards_cap_cannot_change(alice, lead, openai_card):
    card_close(card=openai_card, actor=Actor.system("test"))
    before = changes(openai_card)
    html = lead.get(page_of(openai_card)).content.decode()
    assert "The card is closed" in html
    assert ">Save</button>" not in html
    response = lead.post(f"{page_of(openai_card)}cap", {"monthly_cap": "10.00"})
    assert response.status_code == 400
    assert "A closed card&#x27;s cap cannot change." in response.content.decode()
    assert changes(openai_card) == before
