from __future__ import annotations

from typing import Any

from rest_framework import serializers

from agentwallet.api.fields import MoneyField
from ledger.selectors import AgentBudget, CapFigure


class CapFigureOutputSerializer(serializers.Serializer[Any]):
    cap = MoneyField(allow_null=True, help_text="null: no cap set")
    spent = MoneyField()
    remaining = MoneyField(allow_null=True)


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
    spent = MoneyField(source="figure.spent")
    remaining = MoneyField(source="figure.remaining", allow_null=True)


class WindowOutputSerializer(CapFigureOutputSerializer):
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()


class X402BudgetOutputSerializer(serializers.Serializer[Any]):
    allowed = serializers.BooleanField()
    per_call_cap = MoneyField(allow_null=True)


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
    x402 = X402BudgetOutputSerializer()

    @staticmethod
    def shape(budget: AgentBudget) -> dict[str, Any]:
        def window(figure: CapFigure, start: Any, end: Any) -> dict[str, Any]:
            return {
                "cap": figure.cap,
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
            "time_zone": policy.time_zone,
            "rolling_24h": window(budget.daily, budget.day_start, budget.as_of),
            "month": window(budget.monthly, budget.month_start, budget.month_end),
            "per_authorization_cap": policy.per_authorization_cap,
            "cards": budget.cards,
            "traces": budget.traces,
            "x402": {"allowed": policy.x402_allowed, "per_call_cap": policy.x402_per_call_cap},
        }
