from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentwallet.api.fields import (
    MoneyField,
    MoneySerializer,
    StrictInputSerializer,
    StrictIntegerField,
    StrictRegexField,
)
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
    principal_email_verified = serializers.BooleanField(
        source="principal.email_verified",
        read_only=True,
        help_text="Whether the principal followed the signed link mailed to them.",
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
            "principal_email_verified",
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


# --- x402 ---------------------------------------------------------------------------


class WalletOutputSerializer(serializers.Serializer[Any]):
    """The agent's USDC wallet: its address, never its key."""

    address = serializers.CharField(help_text="The EVM address payments are signed from.")
    status = serializers.ChoiceField(choices=["active", "frozen"])
    networks = serializers.ListField(
        child=serializers.CharField(), help_text="CAIP-2 networks it pays on."
    )
    asset = serializers.CharField(default="USDC")
    created_at = serializers.DateTimeField()


class X402PayInputSerializer(StrictInputSerializer):
    payment_required = serializers.JSONField(
        help_text="The 402's PAYMENT-REQUIRED header value (v2, base64), or the 402 "
        "response's JSON body (v1), as an object or its text."
    )
    resource = serializers.URLField(max_length=2000, help_text="The URL that answered 402.")
    trace_id = StrictRegexField(
        TRACE_ID_PATTERN.pattern,
        max_length=128,
        required=False,
        default="",
        allow_blank=True,
        help_text="The PR or task this call is for (else the agent's trace context).",
    )


class X402PaymentOutputSerializer(serializers.Serializer[Any]):
    """A signed payment: the header to retry the request with."""

    payment_id = serializers.UUIDField(source="payment.id")
    status = serializers.CharField(source="payment.status")
    header = serializers.CharField(
        source="payment.header_name", help_text="PAYMENT-SIGNATURE (v2) or X-PAYMENT (v1)."
    )
    value = serializers.CharField(source="header_value", help_text="The header's value.")
    x402_version = serializers.IntegerField(source="payment.x402_version")
    amount = serializers.SerializerMethodField(help_text="What is paid, in USDC (exact).")
    cap_amount = MoneyField(source="payment.cap_amount", help_text="As counted against caps.")
    network = serializers.CharField(source="payment.network")
    pay_to = serializers.CharField(source="payment.pay_to")
    valid_before = serializers.DateTimeField(source="payment.valid_before")
    trace_id = serializers.CharField(source="payment.trace_id")
    ledger_entry_id = serializers.IntegerField(source="payment.entry_id")
    replayed = serializers.BooleanField(help_text="The first answer to this key, again.")

    @extend_schema_field(MoneySerializer)
    def get_amount(self, outcome: Any) -> dict[str, str]:
        return x402_amount_json(outcome.payment)


def x402_amount_json(payment: Any) -> dict[str, str]:
    """A payment's USDC amount in the money shape, exact (X402Payment.usdc_amount)."""
    return {"amount": f"{payment.usdc_amount:f}", "currency": "USD"}


class X402SettledInputSerializer(StrictInputSerializer):
    payment_response = serializers.JSONField(
        help_text="The server's PAYMENT-RESPONSE (v2) or X-PAYMENT-RESPONSE (v1) header "
        "value, as it came (base64)."
    )


class X402PaymentStateOutputSerializer(serializers.Serializer[Any]):
    """One x402 payment as recorded: what was paid, to whom, for what, and what became
    of it (the ledger entries are its money)."""

    payment_id = serializers.UUIDField(source="id")
    status = serializers.ChoiceField(
        choices=["declined", "signed", "settled", "failed", "released"],
        help_text="signed: counted as spent until settled or released after valid_before.",
    )
    reason = serializers.CharField(help_text="The decline's code.")
    x402_version = serializers.IntegerField()
    amount = serializers.SerializerMethodField(help_text="In USDC, exact; null if unknown.")
    cap_amount = MoneyField(allow_null=True, help_text="As counted against caps.")
    network = serializers.CharField()
    pay_to = serializers.CharField()
    vendor = serializers.CharField(
        source="vendor.slug", allow_null=True, default=None, help_text="Known payee's vendor."
    )
    resource = serializers.CharField(source="resource_url")
    trace_id = serializers.CharField()
    nonce = serializers.CharField(allow_null=True)
    valid_before = serializers.DateTimeField(allow_null=True)
    transaction = serializers.CharField(source="settlement_transaction")
    error_reason = serializers.CharField(source="settlement_error")
    approval_id = serializers.IntegerField(source="approval_request_id", allow_null=True)
    ledger_entry_id = serializers.IntegerField(source="entry_id", allow_null=True)
    release_entry_id = serializers.IntegerField(allow_null=True)
    decided_at = serializers.DateTimeField()

    @extend_schema_field(MoneySerializer(allow_null=True))
    def get_amount(self, payment: Any) -> dict[str, str] | None:
        return x402_amount_json(payment) if payment.atomic_amount else None
