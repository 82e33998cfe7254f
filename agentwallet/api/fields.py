"""Serializer building blocks shared by every app's API."""

from __future__ import annotations

import re
from typing import Any

from djmoney.money import Money
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentwallet.lib.money import MoneyError, currency_code, money_json, parse_amount


class MoneySerializer(serializers.Serializer[Any]):
    """Documents the money shape: {"amount": "12.50", "currency": "USD"}."""

    amount = serializers.CharField(help_text='Decimal string, e.g. "12.50". Never a float.')
    currency = serializers.CharField(
        min_length=3, max_length=3, help_text="ISO 4217 code, e.g. USD."
    )


@extend_schema_field(MoneySerializer)
class MoneyField(serializers.Field):  # type: ignore[type-arg]
    """Money in and out, exactly. Positive amounts only, in the currency's minor unit."""

    default_error_messages = {
        "shape": 'Money must be an object {{"amount": "12.50", "currency": "USD"}}.',
    }

    def to_internal_value(self, data: Any) -> Money:
        if not isinstance(data, dict) or set(data) != {"amount", "currency"}:
            self.fail("shape")
        try:
            code = currency_code(data["currency"])
            return Money(parse_amount(data["amount"], code), code)
        except MoneyError as exc:
            raise serializers.ValidationError(str(exc)) from exc

    def to_representation(self, value: Money) -> dict[str, str] | None:
        return money_json(value)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (or a string of ASCII digits). DRF's own field calls int(), which
    also reads "1_000", full-width digits, " 12 " and 12.0."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not (
            isinstance(data, int) or (isinstance(data, str) and _INTEGER.fullmatch(data))
        ):
            self.fail("invalid")
        return super().to_internal_value(data)  # type: ignore[no-any-return]


_INTEGER = re.compile(r"-?[0-9]{1,18}", re.ASCII)


class StrictRegexField(serializers.RegexField):
    """RegexField whose `^...$` means the whole string: Python's `$` also matches before
    a trailing newline, so "PR-1\\n" would pass as a trace id. (The schema's pattern is
    right as it is: in JSON Schema `$` is the end of the string.)"""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value.endswith("\n"):
            self.fail("invalid")
        return value  # type: ignore[no-any-return]


class StrictInputSerializer(serializers.Serializer[Any]):
    """Input serializer that refuses unknown keys: a typo in a cap must not pass silently."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            errors = {name: ["Unknown field."] for name in sorted(set(data) - set(self.fields))}
            # DRF would turn 12 into "12"; for names, reasons and ids a number is a mistake.
            errors |= {
                name: ["Must be a string."]
                for name, field in self.fields.items()
                if isinstance(field, serializers.CharField)
                and data.get(name) is not None
                and not isinstance(data[name], str)
            }
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


def validate_input(
    serializer_class: type[serializers.Serializer[Any]], data: Any, **kwargs: Any
) -> Any:
    """Validate request data and return it, raising the API's 400 on bad input."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
