from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from rest_framework import serializers

from agentwallet.api.fields import MoneyField, StrictInputSerializer
from agentwallet.lib.money import MoneyError, currency_code, money_json, parse_amount
from ledger.models import LedgerEntry
from ledger.selectors import AgentBudget, CapFigure

if TYPE_CHECKING:
    from ledger.services import Decided


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
    def shape(budget: AgentBudget) -> dict[str, Any]:
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
            "time_zone": policy.time_zone,
            "rolling_24h": window(budget.daily, budget.day_start, budget.as_of),
            "month": window(budget.monthly, budget.month_start, budget.month_end),
            "per_authorization_cap": policy.per_authorization_cap,
            "cards": budget.cards,
            "traces": budget.traces,
            "bumps": budget.bumps,
            "x402": {"allowed": policy.x402_allowed, "per_call_cap": policy.x402_per_call_cap},
        }


# --- Card network ------------------------------------------------------------------

NETWORK_ID_REGEX = r"^[A-Za-z0-9_.:-]{1,100}$"
NETWORK_ID_FIELD = {"regex": NETWORK_ID_REGEX, "max_length": 100}
TRACE_ID_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._:/#@+-]{0,127}$"
MCC_REGEX = r"^\d{4}$"
COUNTRY_REGEX = r"^[A-Z]{2}$"


class MerchantInputSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")
    mcc = serializers.RegexField(MCC_REGEX, max_length=4)
    network_id = serializers.CharField(max_length=64, allow_blank=True, required=False, default="")
    country = serializers.RegexField(COUNTRY_REGEX, max_length=2, required=False, default="")


class NetworkAuthorizationInputSerializer(StrictInputSerializer):
    id = serializers.RegexField(**NETWORK_ID_FIELD)
    card_id = serializers.CharField(max_length=64)
    amount = MoneyField()
    merchant = MerchantInputSerializer()
    trace_id = serializers.RegexField(
        TRACE_ID_REGEX, max_length=128, required=False, default="", allow_blank=True
    )


# The authorization request is also decoded by msgspec: it is the one endpoint on the
# hot path, and the serializer above costs more CPU than the decision's own SQL. The
# serializer stays as its documentation (OpenAPI); a test keeps the two in step.
def _text(
    pattern: str | None = None, max_length: int | None = None, min_length: int | None = None
) -> Any:
    return Annotated[
        str, msgspec.Meta(pattern=pattern, max_length=max_length, min_length=min_length)
    ]


class _MoneyIn(msgspec.Struct, forbid_unknown_fields=True):
    amount: Decimal  # JSON strings and numbers, both exact
    currency: str


class _MerchantIn(msgspec.Struct, forbid_unknown_fields=True):
    mcc: _text(MCC_REGEX)  # type: ignore[valid-type]
    name: _text(max_length=200) = ""  # type: ignore[valid-type]
    network_id: _text(max_length=64) = ""  # type: ignore[valid-type]
    country: _text(COUNTRY_REGEX) = ""  # type: ignore[valid-type]


class NetworkAuthorizationIn(msgspec.Struct, forbid_unknown_fields=True):
    id: _text(NETWORK_ID_REGEX)  # type: ignore[valid-type]
    card_id: _text(max_length=64, min_length=1)  # type: ignore[valid-type]
    amount: _MoneyIn
    merchant: _MerchantIn
    trace_id: _text(f"^$|{TRACE_ID_REGEX}", max_length=128) = ""  # type: ignore[valid-type]


class InputError(ValueError):
    """Bad input, in the API's error shape (code, message, fields)."""

    def __init__(self, code: str, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields or {}


_authorization_decoder = msgspec.json.Decoder(NetworkAuthorizationIn)
_MSGSPEC_PATH = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_MSGSPEC_FIELD = re.compile(r"field `(?P<name>[^`]+)`")


def network_authorization_decode(body: bytes) -> NetworkAuthorizationIn:
    """Decode and validate an authorization request (raises InputError)."""
    try:
        data = _authorization_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise InputError("parse_error", f"Malformed JSON: {exc}") from exc
    try:
        code = currency_code(data.amount.currency)
        data.amount.amount = parse_amount(data.amount.amount, code)
        data.amount.currency = code
    except MoneyError as exc:
        raise InputError("invalid", f"amount: {exc}", {"amount": [str(exc)]}) from exc
    data.merchant.name = data.merchant.name.strip()
    return data


def _validation_error(text: str) -> InputError:
    """msgspec's one message ("Expected `str`, got `int` - at `$.merchant.mcc`") as the
    API's nested fields, named the way the serializers name them."""
    match = _MSGSPEC_PATH.match(text)
    what = match["what"] if match else text
    path = [part for part in (match["path"] or "").split(".") if part] if match else []
    named = _MSGSPEC_FIELD.search(what)
    if named and what.startswith("Object contains unknown"):
        path, what = [*path, named["name"]], "Unknown field."
    elif named and what.startswith("Object missing required"):
        path, what = [*path, named["name"]], "This field is required."
    if not path or any(part.startswith("[") for part in path):
        return InputError("invalid", what, {"non_field_errors": [what]})
    fields: dict[str, Any] = {path[-1]: [what]}
    for part in reversed(path[:-1]):
        fields = {part: fields}
    return InputError("invalid", f"{'.'.join(path)}: {what}", fields)


class NetworkCaptureInputSerializer(StrictInputSerializer):
    amount = MoneyField()
    id = serializers.RegexField(
        required=False,
        help_text="The network's transaction id (makes a retried capture safe).",
        **NETWORK_ID_FIELD,
    )
    card_id = serializers.CharField(
        max_length=64, required=False, help_text="Needed only for an authorization we never saw."
    )
    trace_id = serializers.RegexField(
        TRACE_ID_REGEX, max_length=128, required=False, default="", allow_blank=True
    )


class NetworkReverseInputSerializer(StrictInputSerializer):
    amount = MoneyField(required=False, help_text="Omit to release the whole hold.")
    id = serializers.RegexField(required=False, **NETWORK_ID_FIELD)


class NetworkRefundInputSerializer(StrictInputSerializer):
    id = serializers.RegexField(**NETWORK_ID_FIELD)
    card_id = serializers.CharField(max_length=64)
    amount = MoneyField()
    authorization_id = serializers.RegexField(required=False, **NETWORK_ID_FIELD)


class CapStopOutputSerializer(serializers.Serializer[Any]):
    scope = serializers.CharField()
    limit = MoneyField(allow_null=True)
    remaining = MoneyField(allow_null=True)


class NetworkDecisionOutputSerializer(serializers.Serializer[Any]):
    id = serializers.CharField(help_text="The network's authorization id.")
    decision = serializers.ChoiceField(choices=["approved", "declined"])
    reason = serializers.CharField(allow_blank=True)
    authorization_id = serializers.IntegerField(allow_null=True)
    cap_amount = MoneyField(allow_null=True)
    fx_rate = serializers.DecimalField(max_digits=18, decimal_places=8, allow_null=True)
    fx_rate_date = serializers.DateField(allow_null=True)
    trace_id = serializers.CharField(allow_blank=True)
    cap = CapStopOutputSerializer(allow_null=True, help_text="The cap that stopped it.")
    approval_id = serializers.IntegerField(allow_null=True)
    replayed = serializers.BooleanField()


FX_RATE_PLACES = Decimal("0.00000001")


def decision_body(auth: Decided, *, replayed: bool) -> dict[str, Any]:
    """The decision as NetworkDecisionOutputSerializer renders it, built directly (the
    hot path; a test checks both give the same JSON)."""
    return {
        "id": auth.network_id,
        "decision": auth.decision,
        "reason": auth.reason,
        "authorization_id": auth.id,
        "cap_amount": money_json(auth.cap_amount),
        "fx_rate": None if auth.fx_rate is None else str(auth.fx_rate.quantize(FX_RATE_PLACES)),
        "fx_rate_date": None if auth.fx_rate_date is None else auth.fx_rate_date.isoformat(),
        "trace_id": auth.trace_id,
        "cap": {
            "scope": auth.cap_scope,
            "limit": money_json(auth.cap_limit),
            "remaining": money_json(auth.cap_remaining),
        }
        if auth.cap_scope
        else None,
        "approval_id": auth.approval_request_id,
        "replayed": replayed,
    }


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
    authorization_id = serializers.CharField(allow_null=True)
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
