"""The sandbox issuer: real-looking cards from a test BIN, no network behind them."""

from __future__ import annotations

import secrets
from datetime import date

from django.conf import settings
from django.utils import timezone

from cards.issuers import CardControls, Cardholder, IssuedCard

CARD_NUMBER_LENGTH = 16


def luhn_check_digit(partial: str) -> str:
    """The digit that makes `partial + digit` pass the Luhn check."""
    total = 0
    # Walk from the right; the check digit will sit right of `partial`,
    # so the rightmost digit of `partial` is doubled.
    for index, char in enumerate(reversed(partial)):
        digit = int(char)
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def luhn_valid(number: str) -> bool:
    return number.isdigit() and luhn_check_digit(number[:-1]) == number[-1]


def add_months(day: date, months: int) -> tuple[int, int]:
    index = day.year * 12 + (day.month - 1) + months
    return index // 12, index % 12 + 1


class SandboxIssuer:
    name = "sandbox"

    def __init__(self, bin_prefix: str | None = None) -> None:
        self.bin_prefix = bin_prefix or settings.AGENTWALLET_SANDBOX_BIN
        if not (self.bin_prefix.isdigit() and 6 <= len(self.bin_prefix) <= 8):
            raise ValueError("The sandbox BIN must be 6 to 8 digits.")

    def cardholder_create(self, *, cardholder: Cardholder) -> str:
        return f"sbx_ich_{secrets.token_hex(12)}"

    def issue_card(
        self, *, cardholder_id: str, controls: CardControls, card_ref: str
    ) -> IssuedCard:
        """A card from the test BIN; the sandbox enforces no controls of its own (our
        rules, which decide every authorization, are the whole of them)."""
        body_length = CARD_NUMBER_LENGTH - len(self.bin_prefix) - 1
        body = "".join(str(secrets.randbelow(10)) for _ in range(body_length))
        partial = self.bin_prefix + body
        number = partial + luhn_check_digit(partial)
        exp_year, exp_month = add_months(
            timezone.now().date(), settings.AGENTWALLET_CARD_VALIDITY_MONTHS
        )
        return IssuedCard(
            issuer_card_id=f"sbx_card_{secrets.token_hex(12)}",
            number=number,
            cvc=f"{secrets.randbelow(1000):03d}",
            exp_month=exp_month,
            exp_year=exp_year,
        )

    def update_controls(self, *, issuer_card_id: str, controls: CardControls) -> None:
        """The sandbox keeps no state of its own: our card row is the truth."""

    def freeze_card(self, *, issuer_card_id: str) -> None:
        """As update_controls."""

    def unfreeze_card(self, *, issuer_card_id: str) -> None:
        """As update_controls."""

    def close_card(self, *, issuer_card_id: str) -> None:
        """As update_controls."""
