from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from agentwallet.api.fields import MoneyField, StrictInputSerializer, StrictRegexField
from ledger.models import LedgerEntry
from ledger.selectors import AgentBudget, CapFigure


class CapFigureOutputSerializer(serializers.Serializer[Any]):
    cap = MoneyField(allow_null=True, help_text="null: no cap set")
    bump = MoneyField(allow_null=True, help_text="Approved extra room, valid now.")
    spent = MoneyField()
    remaining = MoneyField(allow_null=True, help_text="cap + bump - spent, never below 0")


class CardBudgetOutputSerializer(serializers.Serializer[Any]):
    card_id = serializers.UUIDField(source="card.pk")
    vendor = serializers.CharField(source="card.vendor.slug")
    last4 = serializers.CharField(source="card.last4")
    status = serializers.CharField(source="card.status")
    card_cap = CapFigureOutputSerializer(help_text="The card's own monthly cap.")
    vendor_cap = CapFigureOutputSerializer(
        help_text="The policy's monthly cap for this vendor, across the agent's cards."
    )


class TraceBudgetOutputSerializer(serializers.Serializer[Any]):
    trace_id = serializers.CharField()
    cap = MoneyField(source="figure.cap", allow_null=True)
    bump = MoneyField(source="figure.bump", allow_null=True)
    spent = MoneyField(source="figure.spent")
    remaining = MoneyField(source="figure.remaining", allow_null=True)


class WindowOutputSerializer(CapFigureOutputSerializer):
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()


class BudgetBumpOutputSerializer(serializers.Serializer[Any]):
    scope_key = serializers.CharField()
    amount = MoneyField()
    valid_until = serializers.DateTimeField()
    approval_id = serializers.IntegerField()


class X402BudgetOutputSerializer(serializers.Serializer[Any]):
    allowed = serializers.BooleanField()
    per_call_cap = MoneyField(allow_null=True)
    wallet_address = serializers.CharField(allow_null=True, help_text="null: no wallet yet.")
    wallet_status = serializers.CharField(allow_null=True)
    unsettled = MoneyField(
        help_text="Signed payments not settled nor released yet: counted as spent, as "
        "their signatures can still be settled until their valid-before."
    )
    unsettled_payments = serializers.IntegerField()


class AgentBudgetOutputSerializer(serializers.Serializer[Any]):
    agent_id = serializers.UUIDField()
    currency = serializers.CharField()
    as_of = serializers.DateTimeField()
    time_zone = serializers.CharField()
    rolling_24h = WindowOutputSerializer()
    month = WindowOutputSerializer()
    per_authorization_cap = MoneyField(allow_null=True)
    cards = CardBudgetOutputSerializer(many=True)
    traces = TraceBudgetOutputSerializer(many=True)
    bumps = BudgetBumpOutputSerializer(many=True)
    x402 = X402BudgetOutputSerializer()

    @staticmethod
    def shape(budget: AgentBudget, x402: Any) -> dict[str, Any]:
        def window(figure: CapFigure, start: Any, end: Any) -> dict[str, Any]:
            return {
                "cap": figure.cap,
                "bump": figure.bump,
                "spent": figure.spent,
                "remaining": figure.remaining,
                "window_start": start,
                "window_end": end,
            }

        policy = budget.policy
        return {
            "agent_id": budget.agent.pk,
            "currency": policy.currency,
            "as_of": budget.as_of,
            "time_zone": budget.month_time_zone,
            "rolling_24h": window(budget.daily, budget.day_start, budget.as_of),
            "month": window(budget.monthly, budget.month_start, budget.month_end),
            "per_authorization_cap": policy.per_authorization_cap,
            "cards": budget.cards,
            "traces": budget.traces,
            "bumps": budget.bumps,
            "x402": {
                "allowed": policy.x402_allowed,
                "per_call_cap": policy.x402_per_call_cap,
                "wallet_address": x402.wallet_address,
                "wallet_status": x402.wallet_status,
                "unsettled": x402.unsettled,
                "unsettled_payments": x402.unsettled_payments,
            },
        }


# --- Card network ------------------------------------------------------------------

NETWORK_ID_REGEX = r"^[A-Za-z0-9_.:-]{1,100}$"
NETWORK_ID_FIELD = {"regex": NETWORK_ID_REGEX, "max_length": 100}
TRACE_ID_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._:/#@+-]{0,127}$"
MCC_REGEX = r"^[0-9]{4}$"
COUNTRY_REGEX = r"^[A-Z]{2}$"


class MerchantInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    mcc = StrictRegexField(MCC_REGEX, max_length=4)
    network_id = serializers.CharField(max_length=64, allow_blank=True, required=False, default="")
    country = StrictRegexField(COUNTRY_REGEX, max_length=2, required=False, default="")


class NetworkAuthorizationInputSerializer(StrictInputSerializer):
    id = StrictRegexField(**NETWORK_ID_FIELD)
    card_id = serializers.CharField(max_length=64)
    amount = MoneyField()
    merchant = MerchantInputSerializer()
    trace_id = StrictRegexField(
        TRACE_ID_REGEX, max_length=128, required=False, default="", allow_blank=True
    )


EVENT_ID_HELP = (
    "The network's own id for this event, unique across all events (authorizations, "
    "captures, reversals, refunds). The same id again with the same path and payload "
    "answers the first result and writes nothing; with another path or payload, 409."
)


class NetworkCaptureInputSerializer(StrictInputSerializer):
    id = StrictRegexField(help_text=EVENT_ID_HELP, **NETWORK_ID_FIELD)
    amount = MoneyField()
    card_id = serializers.CharField(
        max_length=64, required=False, help_text="Needed only for an authorization we never saw."
    )
    trace_id = StrictRegexField(
        TRACE_ID_REGEX, max_length=128, required=False, default="", allow_blank=True
    )


class NetworkReverseInputSerializer(StrictInputSerializer):
    id = StrictRegexField(help_text=EVENT_ID_HELP, **NETWORK_ID_FIELD)
    amount = MoneyField(required=False, help_text="Omit to release the whole hold.")


class NetworkRefundInputSerializer(StrictInputSerializer):
    id = StrictRegexField(help_text=EVENT_ID_HELP, **NETWORK_ID_FIELD)
    card_id = serializers.CharField(max_length=64)
    amount = MoneyField()
    authorization_id = StrictRegexField(
        required=False,
        help_text="The network's id of the authorization refunded (its capture).",
        **NETWORK_ID_FIELD,
    )


class CapStopOutputSerializer(serializers.Serializer[Any]):
    scope = serializers.CharField()
    limit = MoneyField(allow_null=True)
    remaining = MoneyField(allow_null=True)


class NetworkDecisionOutputSerializer(serializers.Serializer[Any]):
    """Shapes an AuthorizationOutcome (ledger.services.authorization)."""

    id = serializers.CharField(source="decided.network_id", help_text="The network's id.")
    decision = serializers.ChoiceField(source="decided.decision", choices=["approved", "declined"])
    reason = serializers.CharField(source="decided.reason", allow_blank=True)
    authorization_id = serializers.CharField(
        source="decided.network_id",
        help_text="The network's authorization id (the same as `id`): the one to capture, "
        "reverse or refund with, and the `authorization_id` of ledger entries.",
    )
    decision_id = serializers.IntegerField(
        source="decided.authorization_id",
        allow_null=True,
        help_text="AgentWallet's own number for the stored decision (admin, audit); null "
        "when nothing could be recorded (system_unavailable).",
    )
    merchant_lock = serializers.CharField(
        source="decided.merchant_lock",
        allow_blank=True,
        help_text="For merchant_not_allowed, the lock that stopped it: card_merchant_ids, "
        "vendor_merchant_ids, learned_merchant_id or descriptor.",
    )
    cap_amount = MoneyField(
        source="decided.cap_amount", allow_null=True, help_text="The charge in the cap currency."
    )
    fx_rate = serializers.DecimalField(
        source="decided.fx_rate", max_digits=18, decimal_places=8, allow_null=True
    )
    fx_rate_date = serializers.DateField(source="decided.fx_rate_date", allow_null=True)
    trace_id = serializers.CharField(source="decided.trace_id", allow_blank=True)
    cap = CapStopOutputSerializer(
        source="decided.cap", allow_null=True, help_text="The cap that stopped it."
    )
    approval_id = serializers.IntegerField(source="decided.approval_id", allow_null=True)
    warnings = serializers.SerializerMethodField(
        help_text="fx_rate_stale: converted at a rate older than AGENTWALLET_FX_MAX_AGE_DAYS."
    )
    replayed = serializers.BooleanField(help_text="The first answer to this id, again.")

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_warnings(self, outcome: Any) -> list[str]:
        return ["fx_rate_stale"] if outcome.decided.fx_rate_stale else []


class LedgerEntryOutputSerializer(serializers.ModelSerializer[LedgerEntry]):
    agent_id = serializers.UUIDField(read_only=True)
    card_id = serializers.UUIDField(read_only=True, allow_null=True)
    vendor = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    authorization_id = serializers.CharField(
        source="authorization.network_id", read_only=True, allow_null=True, default=None
    )
    amount = MoneyField()
    cap_amount = MoneyField()

    class Meta:
        model = LedgerEntry
        fields = [
            "id",
            "kind",
            "rail",
            "flag",
            "agent_id",
            "card_id",
            "vendor",
            "authorization_id",
            "network_txn_id",
            "trace_id",
            "amount",
            "cap_amount",
            "fx_rate",
            "memo",
            "created_at",
            "effective_at",
        ]
        read_only_fields = fields


class NetworkPostingOutputSerializer(serializers.Serializer[Any]):
    authorization_id = serializers.CharField(
        allow_null=True, help_text="The network's authorization id; null for an unlinked refund."
    )
    hold_state = serializers.CharField(allow_null=True)
    held = MoneyField(allow_null=True, help_text="Still held on the authorization.")
    entries = LedgerEntryOutputSerializer(many=True)
    replayed = serializers.BooleanField()


class TraceVendorSpendOutputSerializer(serializers.Serializer[Any]):
    vendor = serializers.CharField(allow_null=True)
    spent = MoneyField()
    entries = serializers.IntegerField()


class TraceAgentSpendOutputSerializer(serializers.Serializer[Any]):
    agent_id = serializers.UUIDField()
    agent_name = serializers.CharField()
    spent = MoneyField()


class TraceSummaryOutputSerializer(serializers.Serializer[Any]):
    trace_id = serializers.CharField()
    spent = MoneyField()
    entries = serializers.IntegerField()
    first_at = serializers.DateTimeField()
    last_at = serializers.DateTimeField()


class TraceDetailOutputSerializer(TraceSummaryOutputSerializer):
    by_vendor = TraceVendorSpendOutputSerializer(many=True)
    by_agent = TraceAgentSpendOutputSerializer(many=True)
