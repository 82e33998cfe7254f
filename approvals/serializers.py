from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentwallet.api.fields import MoneyField, StrictInputSerializer, StrictRegexField
from approvals.models import ApprovalRequest, ApprovalScope, DecisionChannel
from policies.models import Vendor


class CapBumpOutputSerializer(serializers.Serializer[Any]):
    amount = MoneyField()
    valid_from = serializers.DateTimeField()
    valid_until = serializers.DateTimeField()


class ApprovalOutputSerializer(serializers.ModelSerializer[ApprovalRequest]):
    agent_id = serializers.UUIDField(read_only=True)
    agent_name = serializers.CharField(source="agent.name", read_only=True)
    vendor = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    cap_limit = MoneyField()
    spent = MoneyField()
    requested_amount = MoneyField()
    approved_amount = MoneyField(allow_null=True)
    # Declared so the schema says it: "" while the request is pending (a model field's
    # blank=True does not reach the schema of a read-only field).
    decided_via = serializers.ChoiceField(
        choices=DecisionChannel.choices, allow_blank=True, read_only=True
    )
    bump = serializers.SerializerMethodField()

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "agent_id",
            "agent_name",
            "scope",
            "scope_key",
            "vendor",
            "trace_id",
            "status",
            "origin",
            "cap_limit",
            "spent",
            "requested_amount",
            "approved_amount",
            "declines_attached",
            "reason",
            "decided_by",
            "decided_via",
            "decided_at",
            "note",
            "expires_at",
            "created_at",
            "bump",
        ]
        read_only_fields = fields

    @extend_schema_field(CapBumpOutputSerializer(allow_null=True))
    def get_bump(self, request: ApprovalRequest) -> dict[str, Any] | None:
        bump = getattr(request, "bump", None)
        if bump is None:
            return None
        return CapBumpOutputSerializer(bump).data


class ApprovalApproveInputSerializer(StrictInputSerializer):
    amount = MoneyField(required=False, help_text="Default: the requested amount.")
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class ApprovalDenyInputSerializer(StrictInputSerializer):
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True, default="")


class ApprovalAskInputSerializer(StrictInputSerializer):
    scope = serializers.ChoiceField(choices=ApprovalScope.choices)
    amount = MoneyField()
    reason = serializers.CharField(max_length=1000)
    trace_id = StrictRegexField(
        r"^[A-Za-z0-9][A-Za-z0-9._:/#@+-]{0,127}$", max_length=128, required=False, default=""
    )
    vendor = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Vendor.objects.all(),
        required=False,
        allow_null=True,
        default=None,
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        currency: str = self.context["currency"]
        if str(attrs["amount"].currency) != currency:
            raise serializers.ValidationError({"amount": f"Ask in the policy currency {currency}."})
        if attrs["scope"] == ApprovalScope.TRACE and not attrs["trace_id"]:
            raise serializers.ValidationError({"trace_id": "A trace request names the trace."})
        if attrs["scope"] == ApprovalScope.VENDOR and attrs["vendor"] is None:
            raise serializers.ValidationError({"vendor": "A vendor request names the vendor."})
        attrs["amount"] = attrs["amount"].amount
        return attrs
