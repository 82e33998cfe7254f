"""Money helpers shared by every app (no ORM)."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from djmoney.money import Money
from moneyed import CurrencyDoesNotExist, get_currency

# Amounts are limited to what MoneyField stores: 12 integer digits, 2 places.
MAX_AMOUNT = Decimal("999999999999.99")
CENT = Decimal("0.01")


class MoneyError(ValueError):
    """An amount or currency that cannot be used as money."""


def currency_code(value: object) -> str:
    """Return a valid ISO 4217 code, upper-cased, or raise MoneyError."""
    if not isinstance(value, str) or len(value) != 3 or not value.isalpha():
        raise MoneyError("Currency must be a three-letter ISO 4217 code.")
    code = value.upper()
    try:
        get_currency(code)
    except CurrencyDoesNotExist as exc:
        raise MoneyError(f"Unknown currency {code!r}.") from exc
    return code


def minor_unit_places(code: str) -> int:
    """Decimal places of the currency's minor unit (USD 2, JPY 0), at most 2."""
    sub_unit = get_currency(code).sub_unit or 1
    return min(len(str(sub_unit)) - 1, 2)


def parse_amount(value: object, code: str, *, allow_zero: bool = False) -> Decimal:
    """Parse a positive money amount exactly from an ASCII decimal string with at most the
    currency's minor-unit digits ("12.50"). Numbers, "1_000", full-width digits and " 12.50 " are
    refused: Python's Decimal() accepts all of those, a payment API must not."""
    if not isinstance(value, str):
        raise MoneyError('Amount must be a decimal string such as "12.50".')
    places = minor_unit_places(code)
    if not _AMOUNT_PATTERNS[places].fullmatch(value):
        if _AMOUNT_PATTERNS[2].fullmatch(value) or _ANY_DECIMAL.fullmatch(value):
            raise MoneyError(f"{code} amounts have at most {places} decimal places.")
        raise MoneyError('Amount must be a decimal string such as "12.50".')
    amount = Decimal(value)
    if amount == 0 and not allow_zero:
        raise MoneyError("Amount must be greater than zero.")
    if amount > MAX_AMOUNT:
        raise MoneyError(f"Amount must be at most {MAX_AMOUNT}.")
    return amount.quantize(CENT)


# ASCII digits only ([0-9], not \d, which matches every script's digits).
_AMOUNT_PATTERNS = {
    0: re.compile(r"[0-9]{1,15}", re.ASCII),
    1: re.compile(r"[0-9]{1,15}(\.[0-9])?", re.ASCII),
    2: re.compile(r"[0-9]{1,15}(\.[0-9]{1,2})?", re.ASCII),
}
_ANY_DECIMAL = re.compile(r"[0-9]{1,15}\.[0-9]+", re.ASCII)


def round_against_agent(amount: Decimal) -> Decimal:
    """Round a converted amount up to the cent, so conversion never creates headroom."""
    return amount.quantize(CENT, rounding=ROUND_CEILING)


def money_json(money: Money | None) -> dict[str, str] | None:
    """DESIGN's money shape: {"amount": "12.50", "currency": "USD"}."""
    if money is None:
        return None
    return {"amount": f"{money.amount.quantize(CENT)}", "currency": str(money.currency)}


def cents_json(cents: int, currency: str) -> dict[str, str]:
    """Integer cents of a currency in DESIGN's money shape."""
    return {"amount": f"{from_cents(cents)}", "currency": currency}


def to_cents(amount: Decimal) -> int:
    """Exact integer cents of an amount already quantized to the cent."""
    cents = amount * 100
    if cents != cents.to_integral_value():
        raise MoneyError(f"{amount} has fractions of a cent.")
    return int(cents)


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def convert_up(amount: Decimal, rate: Decimal) -> Decimal:
    """Spend converted to the cap currency: rounded up, so it never creates headroom."""
    return round_against_agent(amount * rate)


def convert_down(amount: Decimal, rate: Decimal) -> Decimal:
    """A credit (release, refund) converted to the cap currency: rounded down."""
    return (amount * rate).quantize(CENT, rounding=ROUND_FLOOR)
