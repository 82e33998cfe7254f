"""The Stripe Issuing backend, through the real `stripe` package against a local server
that speaks Stripe's wire format (cards.tests.fake_stripe)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cards.issuers import IssuerError
from cards.issuers.stripe import UnsupportedCurrency, from_minor, stripe_categories, to_minor
from cards.models import Card, CardStatus, IssuerCardholder
from cards.services import card_cap_update, card_close, card_freeze, card_unfreeze
from cards.tests.fake_stripe import form_decode
from policies.models import Vendor
from wallets.actors import Actor
from wallets.models import Agent

LEAD = Actor.system("test")

# The design's reference of MCCs and Stripe's category names for them: the mapping
# comes from iso18245 (Stripe's own list), which must agree with it.
MCC_REFERENCE = {
    "4814": "telecommunication_services",
    "4816": "computer_network_services",
    "5734": "computer_software_stores",
    "5816": "digital_goods_games",
    "5817": "digital_goods_applications",
    "5818": "digital_goods_large_volume",
    "7311": "advertising_services",
    "7372": "computer_programming",
    "7399": "miscellaneous_business_services",
}


def test_every_reference_mcc_maps_to_its_stripe_category():
    for mcc, category in MCC_REFERENCE.items():
        assert stripe_categories((mcc,)) == [category]


def test_every_curated_vendors_mccs_map(db):
    for vendor in Vendor.objects.exclude(mccs=[]):
        assert stripe_categories(tuple(vendor.mccs)), vendor.slug


def test_an_mcc_without_a_stripe_category_gives_no_allowlist_rather_than_a_wrong_one():
    assert stripe_categories(("5734", "0000")) is None


def test_minor_units_are_exact():
    assert to_minor(Decimal("12.34"), "usd") == 1234
    assert to_minor(Decimal("1500"), "JPY") == 1500
    assert from_minor(1234, "usd") == Decimal("12.34")
    assert from_minor(1500, "jpy") == Decimal("1500.00")
    with pytest.raises(ValueError, match="whole number of minor units"):
        to_minor(Decimal("12.345"), "USD")
    with pytest.raises(UnsupportedCurrency):
        from_minor(1000, "KWD")


def test_form_decoding_of_the_fake_matches_stripes_encoding():
    raw = (
        "spending_controls[allowed_categories][0]=a&spending_controls[allowed_categories][1]=b"
        "&spending_controls[spending_limits][0][amount]=500"
        "&spending_controls[spending_limits][0][interval]=monthly&metadata[k]=v"
    )
    assert form_decode(raw) == {
        "spending_controls": {
            "allowed_categories": ["a", "b"],
            "spending_limits": [{"amount": "500", "interval": "monthly"}],
        },
        "metadata": {"k": "v"},
    }


def test_provisioning_on_stripe_issues_real_cards_with_spending_controls(fake_stripe, provision):
    provisioned = provision(name="stripe-agent", email="team@example.com")
    assert provisioned.cards
    holders = fake_stripe.calls("POST", "/v1/issuing/cardholders")
    assert len(holders) == 1
    assert holders[0]["type"] == "company"
    assert holders[0]["email"] == "team@example.com"
    assert holders[0]["billing"]["address"]["country"] == "US"
    principal = provisioned.agent.principal
    holder = IssuerCardholder.objects.get(issuer="stripe", principal=principal)
    assert holder.cardholder_id in fake_stripe.cardholders

    for new_card in provisioned.cards:
        card = new_card.card
        at_stripe = fake_stripe.cards[card.issuer_card_id]
        assert card.issuer == "stripe"
        assert at_stripe["cardholder"]["id"] == holder.cardholder_id
        assert at_stripe["metadata"] == {"agentwallet_card_id": str(card.pk)}
        assert at_stripe["status"] == "active"
        assert at_stripe["type"] == "virtual"
        assert at_stripe["currency"] == "usd"
        controls = at_stripe["spending_controls"]
        assert controls["allowed_categories"] == stripe_categories(tuple(card.vendor.mccs))
        assert controls["spending_limits"] == []  # standing cards have no cap of their own
        # The number and CVC are Stripe's, read once (expanded) and shown once.
        assert new_card.secrets.number == at_stripe["_number"]
        assert new_card.secrets.cvc == at_stripe["_cvc"]
        assert card.last4 == at_stripe["last4"]
        assert (card.exp_month, card.exp_year) == (at_stripe["exp_month"], at_stripe["exp_year"])
    reads = fake_stripe.calls("GET", "/v1/issuing/cards/")
    assert len(reads) == len(provisioned.cards)
    assert all(read["expand"] == ["number", "cvc"] for read in reads)

    # The team's next agent is another card of the same cardholder.
    second = provision(name="stripe-agent-2", email="team@example.com")
    assert len(fake_stripe.calls("POST", "/v1/issuing/cardholders")) == 1
    card = fake_stripe.cards[second.cards[0].card.issuer_card_id]
    assert card["cardholder"]["id"] == holder.cardholder_id


def test_a_card_with_a_cap_has_it_as_a_monthly_spending_limit(fake_stripe, alice, staff_client):
    response = staff_client.post(
        f"/api/agents/{alice.agent.pk}/cards",
        {
            "vendor": "openai",
            "monthly_cap": {"amount": "120.50", "currency": "USD"},
            "trace_id": "acme/api#7",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    card = Card.objects.get(pk=response.json()["card"]["id"])
    at_stripe = fake_stripe.cards[card.issuer_card_id]
    assert at_stripe["spending_controls"]["spending_limits"] == [
        {"amount": 12050, "categories": None, "interval": "monthly"}
    ]
    assert at_stripe["spending_controls"]["spending_limits_currency"] == "usd"
    assert response.json()["number"] == at_stripe["_number"]


def test_freeze_unfreeze_close_and_a_new_cap_reach_stripe(
    fake_stripe, alice, django_capture_on_commit_callbacks
):
    card = alice.cards[0].card
    at_stripe = fake_stripe.cards[card.issuer_card_id]
    with django_capture_on_commit_callbacks(execute=True):
        card_freeze(card=card, actor=LEAD, reason="prompt injection suspected")
    assert at_stripe["status"] == "inactive"
    with django_capture_on_commit_callbacks(execute=True):
        card_unfreeze(card=card, actor=LEAD)
    assert at_stripe["status"] == "active"
    with django_capture_on_commit_callbacks(execute=True):
        card_cap_update(card=card, monthly_cap=Decimal("75.00"), actor=LEAD)
    assert at_stripe["spending_controls"]["spending_limits"] == [
        {"amount": 7500, "categories": None, "interval": "monthly"}
    ]
    # The categories are sent again with the limit, unchanged.
    assert at_stripe["spending_controls"]["allowed_categories"] == stripe_categories(
        tuple(card.allowed_mccs)
    )
    with django_capture_on_commit_callbacks(execute=True):
        card_close(card=card, actor=LEAD, reason="done")
    assert at_stripe["status"] == "canceled"


def test_the_kill_switch_sets_every_card_inactive_at_stripe(
    fake_stripe, alice, alice_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            f"/api/agents/{alice.agent.pk}/freeze", {"reason": "runaway"}, format="json"
        )
    assert response.status_code == 200, response.content
    assert {fake_stripe.cards[c.card.issuer_card_id]["status"] for c in alice.cards} == {"inactive"}


def test_a_freeze_holds_at_once_even_when_stripe_is_away(
    fake_stripe, alice, django_capture_on_commit_callbacks, caplog
):
    card = alice.cards[0].card
    fake_stripe.fail_next = 10  # the library retries twice; every try fails
    with django_capture_on_commit_callbacks(execute=True):
        card_freeze(card=card, actor=LEAD, reason="stop now")
    card.refresh_from_db()
    assert card.status == CardStatus.FROZEN  # what our decisions read: frozen
    assert fake_stripe.cards[card.issuer_card_id]["status"] == "active"  # told later
    assert "Stripe could not update card" in caplog.text


def test_stripe_refusing_a_card_answers_502_and_keeps_nothing(
    fake_stripe, staff_client, starter_policy
):
    fake_stripe.fail_next = 100
    response = staff_client.post(
        "/api/agents",
        {"name": "doomed", "principal_email": "doomed@example.com", "policy": "starter"},
        format="json",
    )
    assert response.status_code == 502, response.content
    assert response.json()["error"]["code"] == "issuer_unavailable"
    assert not Agent.objects.filter(name="doomed").exists()
    assert Card.objects.count() == 0


def test_cards_issued_before_a_failure_are_canceled_at_stripe(fake_stripe, provision, monkeypatch):
    from cards.issuers.stripe import StripeIssuer

    real = StripeIssuer.issue_card
    calls = {"n": 0}

    def second_fails(self, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise IssuerError("Stripe could not create the card: test")
        return real(self, **kwargs)

    monkeypatch.setattr(StripeIssuer, "issue_card", second_fails)
    with pytest.raises(IssuerError):
        provision(name="half", email="half@example.com")
    assert Card.objects.count() == 0
    assert [card["status"] for card in fake_stripe.cards.values()] == ["canceled"]


def test_a_staff_key_is_never_sent_to_stripe_in_an_error(fake_stripe, settings, provision):
    settings.STRIPE_API_KEY = "sk_test_wrong_key"
    with pytest.raises(IssuerError) as caught:
        provision(name="nokey", email="nokey@example.com")
    assert "sk_test_wrong_key" not in str(caught.value)
    assert "Invalid API Key" in str(caught.value)


def test_the_sandbox_stays_the_default(settings, alice):
    assert settings.AGENTWALLET_CARD_ISSUER == "sandbox"
    assert alice.cards[0].card.issuer == "sandbox"
