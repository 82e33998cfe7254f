"""Money helpers shared by every app (no ORM)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

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
    """Parse a positive money amount exactly; floats and junk are refused."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise MoneyError('Amount must be a decimal string such as "12.50".')
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MoneyError("Amount must be a decimal number.") from exc
    if not amount.is_finite():
        raise MoneyError("Amount must be a finite number.")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise MoneyError("Amount must be greater than zero.")
    if amount > MAX_AMOUNT:
        raise MoneyError(f"Amount must be at most {MAX_AMOUNT}.")
    places = minor_unit_places(code)
    exponent = amount.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and -exponent > places
        and amount != amount.quantize(Decimal(1).scaleb(-places))
    ):
        raise MoneyError(f"{code} amounts have at most {places} decimal places.")
    return amount.quantize(CENT)


def round_against_agent(amount: Decimal) -> Decimal:
    """Round a converted amount up to the cent, so conversion never creates headroom."""
    return amount.quantize(CENT, rounding=ROUND_CEILING)


def money_json(money: Money | None) -> dict[str, str] | None:
    """DESIGN's money shape: {"amount": "12.50", "currency": "USD"}."""
    if money is None:
        return None
    return {"amount": f"{money.amount.quantize(CENT)}", "currency": str(money.currency)}


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
