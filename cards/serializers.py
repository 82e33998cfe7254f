from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agentwallet.api.fields import (
    MoneyField,
    StrictInputSerializer,
    StrictIntegerField,
    StrictRegexField,
)
from cards.models import Card
from cards.services import NewCard
from policies.models import Vendor

MAX_EPHEMERAL_SECONDS = 90 * 24 * 3600
MAX_SINGLE_USE_SECONDS = 24 * 3600  # a card asked for one purchase: minutes to hours


class CardOutputSerializer(serializers.ModelSerializer[Card]):
    agent_id = serializers.UUIDField(read_only=True)
    vendor = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    vendor_name = serializers.CharField(source="vendor.name", read_only=True)
    monthly_cap = MoneyField(allow_null=True)

    class Meta:
        model = Card
        fields = [
            "id",
            "agent_id",
            "vendor",
            "vendor_name",
            "status",
            "last4",
            "exp_month",
            "exp_year",
            "allowed_mccs",
            "allowed_merchant_ids",
            "learned_merchant_id",
            "monthly_cap",
            "is_ephemeral",
            "single_use",
            "trace_id",
            "expires_at",
            "created_at",
        ]
        read_only_fields = fields


class IssuedCardOutputSerializer(serializers.Serializer[Any]):
    """A card in the one response that issues it: with its full number and CVC."""

    card = CardOutputSerializer()
    number = serializers.CharField(help_text="Shown once; afterwards only last4.")
    cvc = serializers.CharField(help_text="Shown once; never stored.")

    @staticmethod
    def shape(new_card: NewCard) -> dict[str, Any]:
        return {
            "card": new_card.card,
            "number": new_card.secrets.number,
            "cvc": new_card.secrets.cvc,
        }


class CardCreateInputSerializer(StrictInputSerializer):
    vendor = serializers.SlugRelatedField(slug_field="slug", queryset=Vendor.objects.all())
    monthly_cap = MoneyField(required=False, allow_null=True)
    trace_id = StrictRegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._:/#@+-]{0,127}$", max_length=128, required=False
    )
    expires_in_seconds = StrictIntegerField(
        min_value=60, max_value=MAX_EPHEMERAL_SECONDS, required=False
    )
    single_use = serializers.BooleanField(required=False, default=False)
    max_amount = MoneyField(
        required=False,
        help_text="A single-use card for one charge up to this (with expires_in_seconds, "
        f"at most {MAX_SINGLE_USE_SECONDS // 3600} hours): issued only if it fits the caps "
        "now, else declined with the cap and an approval request.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        cap = attrs.get("monthly_cap")
        currency: str = self.context["currency"]
        ceiling = attrs.get("max_amount")
        if ceiling is not None:
            errors = {}
            if cap is not None:
                errors["max_amount"] = "A single-use card's ceiling is its cap: not both."
            if str(ceiling.currency) != currency:
                errors["max_amount"] = f"Amounts must be in the policy currency {currency}."
            elif ceiling.amount <= 0:
                errors["max_amount"] = "Must be more than zero."
            seconds = attrs.get("expires_in_seconds")
            if seconds is None or seconds > MAX_SINGLE_USE_SECONDS:
                errors["expires_in_seconds"] = (
                    "A single-use card lives minutes to hours: give 60 to "
                    f"{MAX_SINGLE_USE_SECONDS} seconds."
                )
            if errors:
                raise serializers.ValidationError(errors)
            attrs["max_amount"] = ceiling.amount
            attrs["single_use"] = True
        if cap is not None:
            if str(cap.currency) != currency:
                raise serializers.ValidationError(
                    {"monthly_cap": f"Caps must be in the policy currency {currency}."}
                )
            attrs["monthly_cap"] = cap.amount
        return attrs


class CardFreezeInputSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=500)


class CardUnfreezeInputSerializer(StrictInputSerializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
