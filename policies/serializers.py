from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agentwallet.api.fields import (
    MoneyField,
    StrictInputSerializer,
    StrictIntegerField,
    StrictRegexField,
)
from agentwallet.lib.timewindows import is_valid_time_zone
from policies.models import Policy, RunawayAction, Vendor, VendorCategory

MCC_FIELD = StrictRegexField(
    r"^[0-9]{4}$", max_length=4, error_messages={"invalid": "An MCC is 4 digits."}
)


def evm_address_field() -> StrictRegexField:
    return StrictRegexField(r"^0x[0-9a-fA-F]{40}$", max_length=42)


class VendorOutputSerializer(serializers.ModelSerializer[Vendor]):
    class Meta:
        model = Vendor
        fields = [
            "slug",
            "name",
            "category",
            "mccs",
            "descriptors",
            "network_ids",
            "descriptor_lock",
            "merchant_id_lock",
            "currencies",
            "x402_pay_to",
            "is_curated",
        ]
        read_only_fields = fields


class VendorCreateInputSerializer(StrictInputSerializer):
    slug = serializers.SlugField(max_length=50)
    name = serializers.CharField(max_length=100)
    category = serializers.ChoiceField(choices=VendorCategory.choices, default=VendorCategory.OTHER)
    mccs = serializers.ListField(
        child=MCC_FIELD,
        min_length=1,
        max_length=20,
        error_messages={
            "min_length": "A vendor needs at least one merchant category code.",
            "max_length": "At most {max_length} merchant category codes.",
        },
    )
    descriptors = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=20, default=list
    )
    network_ids = serializers.ListField(
        child=serializers.CharField(max_length=64), max_length=50, default=list
    )
    x402_pay_to = serializers.ListField(
        child=evm_address_field(),
        max_length=20,
        default=list,
        help_text="The addresses this vendor is paid at over x402: names a payment's vendor "
        "(and its monthly cap applies).",
    )
    descriptor_lock = serializers.BooleanField(
        default=True,
        help_text="Decline charges whose merchant name matches none of the descriptors.",
    )
    merchant_id_lock = serializers.BooleanField(
        default=True,
        help_text="Enforce the verified network ids; with none, each card locks to the "
        "merchant id of its first approved charge.",
    )
    currencies = serializers.ListField(
        child=StrictRegexField(r"^[A-Z]{3}$", max_length=3),
        min_length=1,
        max_length=20,
        default=lambda: ["USD"],
    )


class VendorCapSerializer(serializers.Serializer[Any]):
    vendor = serializers.SlugRelatedField(slug_field="slug", queryset=Vendor.objects.all())
    monthly_cap = MoneyField()


class PolicyOutputSerializer(serializers.ModelSerializer[Policy]):
    daily_cap = MoneyField()
    monthly_cap = MoneyField()
    per_trace_cap = MoneyField(allow_null=True)
    per_authorization_cap = MoneyField(allow_null=True)
    x402_per_call_cap = MoneyField(allow_null=True)
    unverified_charge_limit = MoneyField(allow_null=True)
    default_vendors = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    vendor_caps = VendorCapSerializer(many=True, read_only=True)

    class Meta:
        model = Policy
        fields = [
            "slug",
            "name",
            "description",
            "currency",
            "daily_cap",
            "monthly_cap",
            "per_trace_cap",
            "per_authorization_cap",
            "velocity_per_hour",
            "x402_allowed",
            "x402_per_call_cap",
            "x402_payees",
            "unverified_charge_limit",
            "time_zone",
            "warning_thresholds",
            "approvals_channel",
            "bump_valid_hours",
            "runaway",
            "default_vendors",
            "vendor_caps",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class _PolicyFieldsSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(allow_blank=True, max_length=2000, required=False)
    daily_cap = MoneyField()
    monthly_cap = MoneyField()
    per_trace_cap = MoneyField(required=False, allow_null=True)
    per_authorization_cap = MoneyField(required=False, allow_null=True)
    velocity_per_hour = StrictIntegerField(
        min_value=1, max_value=100_000, required=False, allow_null=True
    )
    x402_allowed = serializers.BooleanField(required=False)
    x402_per_call_cap = MoneyField(required=False, allow_null=True)
    x402_payees = serializers.ListField(
        child=evm_address_field(),
        max_length=100,
        required=False,
        help_text="When set, x402 pays only these addresses; empty: any payee.",
    )
    unverified_charge_limit = MoneyField(
        required=False,
        allow_null=True,
        help_text="Until the agent's principal verifies their email, card charges above "
        "this are declined principal_unverified (null: no such hold). A new policy "
        "holds them to 25.00 of its currency unless told otherwise.",
    )
    time_zone = serializers.CharField(max_length=64, required=False)
    warning_thresholds = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=100),
        max_length=10,
        required=False,
        help_text="Percent of any cap at which Slack hears once (80, 95).",
    )
    approvals_channel = StrictRegexField(
        r"^[A-Z0-9]{1,40}$",
        max_length=40,
        required=False,
        allow_blank=True,
        help_text="Slack channel id for this policy's approvals (empty: the default).",
    )
    bump_valid_hours = StrictIntegerField(
        min_value=1,
        max_value=24 * 31,
        required=False,
        allow_null=True,
        help_text="How long an approved bump lasts (empty: the end of the policy's day).",
    )
    runaway = serializers.ChoiceField(
        choices=RunawayAction.choices,
        required=False,
        help_text="When this policy's agent's spend runs away: notify (Slack) or freeze "
        "(the kill switch, and Slack).",
    )
    default_vendors = serializers.SlugRelatedField(
        slug_field="slug", many=True, queryset=Vendor.objects.all(), required=False
    )
    vendor_caps = VendorCapSerializer(many=True, required=False)

    def validate_time_zone(self, value: str) -> str:
        if not is_valid_time_zone(value):
            raise serializers.ValidationError(f"Unknown time zone {value!r}.")
        return value

    def validate_vendor_caps(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        slugs = [item["vendor"].slug for item in value]
        if len(slugs) != len(set(slugs)):
            raise serializers.ValidationError("Each vendor may appear once.")
        return value

    def check_currency(self, attrs: dict[str, Any], currency: str) -> dict[str, Any]:
        """Every cap must be in the policy's cap currency; return plain amounts."""
        errors: dict[str, str] = {}
        for name in (
            "daily_cap",
            "monthly_cap",
            "per_trace_cap",
            "per_authorization_cap",
            "x402_per_call_cap",
            "unverified_charge_limit",
        ):
            money = attrs.get(name)
            if money is not None and str(money.currency) != currency:
                errors[name] = f"Caps must be in the policy currency {currency}."
            elif name in attrs:
                attrs[name] = None if money is None else money.amount
        caps = {}
        for item in attrs.get("vendor_caps", []):
            if str(item["monthly_cap"].currency) != currency:
                errors["vendor_caps"] = f"Caps must be in the policy currency {currency}."
            caps[item["vendor"]] = item["monthly_cap"].amount
        if "vendor_caps" in attrs:
            attrs["vendor_caps"] = caps
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class PolicyCreateInputSerializer(_PolicyFieldsSerializer):
    slug = serializers.SlugField(max_length=50)
    currency = StrictRegexField(r"^[A-Z]{3}$", max_length=3)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return self.check_currency(attrs, attrs["currency"])


class PolicyUpdateInputSerializer(_PolicyFieldsSerializer):
    """PATCH: any subset of the fields; the currency and slug cannot change."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Nothing to change.")
        policy: Policy = self.context["policy"]
        return self.check_currency(attrs, policy.currency)


class PolicyWhatIfInputSerializer(StrictInputSerializer):
    """A draft (the PATCH fields to change) and the period to replay: the 30 days before
    `until` (now by default) unless `since` says otherwise; at most 92 days."""

    draft = serializers.DictField(help_text="The policy's PATCH fields, as they would change.")
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class _WhatIfMoneySerializer(serializers.Serializer[Any]):
    amount = serializers.CharField()
    currency = serializers.CharField()


class _WhatIfOutcomeSerializer(serializers.Serializer[Any]):
    declined = serializers.IntegerField()
    declined_amount = _WhatIfMoneySerializer()
    by_reason = serializers.DictField(child=serializers.IntegerField())


class _WhatIfTraceSerializer(serializers.Serializer[Any]):
    trace_id = serializers.CharField()
    declined = serializers.IntegerField()
    declined_amount = _WhatIfMoneySerializer()


class _WhatIfAgentSerializer(serializers.Serializer[Any]):
    agent = serializers.CharField()
    declined = serializers.IntegerField()
    declined_amount = _WhatIfMoneySerializer()


class _WhatIfDraftOutcomeSerializer(_WhatIfOutcomeSerializer):
    traces = _WhatIfTraceSerializer(many=True)
    agents = _WhatIfAgentSerializer(many=True)


class PolicyWhatIfOutputSerializer(serializers.Serializer[Any]):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    authorizations = serializers.IntegerField(help_text="Replayed: the policy's agents'.")
    actual = _WhatIfOutcomeSerializer()
    what_if = _WhatIfDraftOutcomeSerializer()
    newly_declined = serializers.IntegerField(help_text="Approved in fact, declined by the draft.")
    newly_approved = serializers.IntegerField(help_text="Declined in fact, approved by the draft.")
