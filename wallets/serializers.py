from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentwallet.api.fields import StrictInputSerializer, StrictIntegerField, StrictRegexField
from cards.serializers import IssuedCardOutputSerializer
from policies.models import Policy, Vendor
from wallets.models import Agent
from wallets.services import MAX_TRACE_TTL_SECONDS, TRACE_ID_PATTERN


class AgentTraceOutputSerializer(serializers.Serializer[Any]):
    trace_id = serializers.CharField()
    expires_at = serializers.DateTimeField()


class AgentOutputSerializer(serializers.ModelSerializer[Agent]):
    principal_email = serializers.EmailField(source="principal.email", read_only=True)
    principal_slack_user_id = serializers.CharField(
        source="principal.slack_user_id", read_only=True
    )
    policy = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    trace = serializers.SerializerMethodField()

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "status",
            "principal_email",
            "principal_slack_user_id",
            "policy",
            "trace",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(AgentTraceOutputSerializer(allow_null=True))
    def get_trace(self, agent: Agent) -> dict[str, Any] | None:
        now = self.context.get("now")
        if now is None or not agent.active_trace_at(now):
            return None
        return {"trace_id": agent.trace_id, "expires_at": agent.trace_expires_at}


class AgentProvisionOutputSerializer(serializers.Serializer[Any]):
    agent = AgentOutputSerializer()
    api_key = serializers.CharField(help_text="Shown once; only its hash is stored.")
    cards = IssuedCardOutputSerializer(many=True)


class AgentProvisionInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    principal_email = serializers.EmailField(max_length=254)
    principal_slack_user_id = StrictRegexField(
        r"^[UW][A-Z0-9]{2,31}$",
        max_length=32,
        required=False,
        error_messages={"invalid": "A Slack user id looks like U012AB3CD."},
    )
    policy = serializers.SlugRelatedField(slug_field="slug", queryset=Policy.objects.all())
    vendors = serializers.SlugRelatedField(
        slug_field="slug", queryset=Vendor.objects.all(), many=True, required=False
    )

    def validate_vendors(self, value: list[Vendor]) -> list[Vendor]:
        if len({vendor.pk for vendor in value}) != len(value):
            raise serializers.ValidationError("Each vendor may appear once.")
        if len(value) > 50:
            raise serializers.ValidationError("At most 50 vendors.")
        return value


class AgentTraceInputSerializer(StrictInputSerializer):
    trace_id = StrictRegexField(TRACE_ID_PATTERN.pattern, max_length=128)
    ttl_seconds = StrictIntegerField(min_value=1, max_value=MAX_TRACE_TTL_SECONDS, required=False)
