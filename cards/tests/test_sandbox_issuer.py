from __future__ import annotations

import pytest
from django.utils import timezone

from cards.crypto import decrypt_number, encrypt_number, number_fingerprint
from cards.issuers import CardControls
from cards.issuers.sandbox import SandboxIssuer, luhn_check_digit, luhn_valid

CONTROLS = CardControls(currency="USD", allowed_mccs=("5734",), monthly_cap_cents=None)


@pytest.mark.parametrize(
    "number", ["4242424242424242", "4000056655665556", "5555555555554444", "378282246310005"]
)
def test_luhn_accepts_known_test_numbers(number):
    assert luhn_valid(number)


def test_luhn_rejects_a_changed_digit():
    assert not luhn_valid("4242424242424241")
    assert luhn_check_digit("424242424242424") == "2"


def test_sandbox_numbers_pass_luhn_use_the_test_bin_and_are_unique(settings):
    issuer = SandboxIssuer(bin_prefix="400000")
    cards = [
        issuer.issue_card(cardholder_id="ich", controls=CONTROLS, card_ref="c") for _ in range(2000)
    ]
    numbers = [card.number for card in cards]
    assert all(len(n) == 16 and n.startswith("400000") and luhn_valid(n) for n in numbers)
    assert len(set(numbers)) == len(numbers)
    assert len({card.issuer_card_id for card in cards}) == len(cards)
    assert all(len(card.cvc) == 3 and card.cvc.isdigit() for card in cards)


def test_sandbox_expiry_is_in_the_future(settings):
    settings.AGENTWALLET_CARD_VALIDITY_MONTHS = 36
    card = SandboxIssuer().issue_card(cardholder_id="ich", controls=CONTROLS, card_ref="c")
    today = timezone.now().date()
    assert (card.exp_year, card.exp_month) > (today.year + 2, today.month)
    assert 1 <= card.exp_month <= 12


def test_issued_card_repr_hides_number_and_cvc():
    card = SandboxIssuer().issue_card(cardholder_id="ich", controls=CONTROLS, card_ref="c")
    assert card.number not in repr(card)
    assert card.last4 in repr(card)


def test_a_bad_bin_is_refused():
    with pytest.raises(ValueError, match="BIN"):
        SandboxIssuer(bin_prefix="4000x0")


def test_encryption_round_trips_and_hides_the_number():
    ciphertext = encrypt_number("4000001234567899")
    assert "4000001234567899" not in ciphertext
    assert decrypt_number(ciphertext) == "4000001234567899"
    assert number_fingerprint("4000001234567899") == number_fingerprint("4000001234567899")
    assert number_fingerprint("4000001234567899") != number_fingerprint("4000001234567881")
