"""Serializer building blocks shared by every app's API."""

from __future__ import annotations

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
