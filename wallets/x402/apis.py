"""The agents' x402 endpoints: pay a 402, report its settlement, see the wallet."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentwallet.api.exceptions import decline_body, error_body
from agentwallet.api.fields import validate_input
from agentwallet.api.pagination import CreatedCursorPagination
from agentwallet.lib.money import money_json
from wallets import selectors
from wallets.actors import actor_from_request
from wallets.models import Agent, X402Payment, X402PaymentStatus
from wallets.serializers import (
    WalletOutputSerializer,
    X402PayInputSerializer,
    X402PaymentOutputSerializer,
    X402PaymentStateOutputSerializer,
    X402SettledInputSerializer,
    x402_amount_json,
)
from wallets.x402.keys import wallet_ensure
from wallets.x402.protocol import MalformedPaymentRequired
from wallets.x402.services import PayOutcome, PayRequest, x402_pay, x402_settlement_record


class DecidedCursorPagination(CreatedCursorPagination):
    ordering = ("-decided_at", "-id")


_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}", re.ASCII)  # visible ASCII

DECLINE_MESSAGES = {
    "agent_suspended": "The agent is suspended.",
    "wallet_frozen": "The agent's cards and wallet are frozen.",
    "x402_not_allowed": "The agent's policy does not allow x402 payments.",
    "x402_payee_not_allowed": "The policy's x402 payee allowlist does not name this payee.",
    "currency_not_supported": "No exchange rate converts US dollars into the cap currency.",
    "x402_per_call_cap_exceeded": "The price is above the policy's x402 per-call cap.",
    "card_cap_exceeded": "The vendor's monthly cap has no room for this payment.",
    "daily_cap_exceeded": "The rolling 24-hour cap has no room for this payment.",
    "monthly_cap_exceeded": "The monthly cap has no room for this payment.",
    "trace_cap_exceeded": "The trace's cap has no room for this payment.",
    "x402_scheme_unsupported": "No requirement is the exact scheme by EIP-3009.",
    "x402_network_not_allowed": "No requirement is on a network this deployment pays on.",
    "x402_asset_not_allowed": "No requirement is in USDC with its own EIP-712 domain.",
}


def _idempotency_key(request: Request) -> str:
    key = request.headers.get("Idempotency-Key", "")
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ValidationError(
            {"Idempotency-Key": ["Required: 1 to 255 visible ASCII characters, new per payment."]}
        )
    return key


def declined_body(payment: X402Payment) -> dict[str, Any]:
    """DESIGN's error shape, with the cap that stopped it (as a card decline names it)."""
    return decline_body(
        payment.reason,
        DECLINE_MESSAGES.get(payment.reason, "Declined."),
        scope=payment.cap_scope,
        limit=money_json(payment.cap_limit),
        remaining=money_json(payment.cap_remaining),
        approval_id=payment.approval_request_id,
        payment_id=str(payment.pk),
        amount=x402_amount_json(payment) if payment.atomic_amount else None,
        trace_id=payment.trace_id,
    )


class X402PayApi(APIView):
    @extend_schema(
        operation_id="agents_x402_pay",
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="New per payment: the same key never signs twice.",
            )
        ],
        request=X402PayInputSerializer,
        responses={201: X402PaymentOutputSerializer},
        description="Decide and sign one payment for a 402. Declines answer 403 in the "
        "error shape, with the cap that stopped it; nothing is signed.",
    )
    def post(self, request: Request, agent_id: uuid.UUID) -> Response:
        # The agent itself is read (and locked) by the payment: one statement less here.
        if not actor_from_request(request).can_act_on(agent_id):
            raise Http404("No such agent.")
        key = _idempotency_key(request)
        data = validate_input(X402PayInputSerializer, request.data)
        try:
            outcome = x402_pay(request=PayRequest(agent_id=agent_id, idempotency_key=key, **data))
        except Agent.DoesNotExist as exc:
            raise Http404("No such agent.") from exc
        except MalformedPaymentRequired as error:
            return Response(
                error_body(
                    "invalid_payment_required", str(error), {"payment_required": [str(error)]}
                ),
                status=status.HTTP_400_BAD_REQUEST,
            )
        return payment_response(outcome)


def payment_response(outcome: PayOutcome) -> Response:
    if outcome.payment.status == X402PaymentStatus.DECLINED:
        return Response(declined_body(outcome.payment), status=status.HTTP_403_FORBIDDEN)
    return Response(X402PaymentOutputSerializer(outcome).data, status=status.HTTP_201_CREATED)


class X402SettledApi(APIView):
    @extend_schema(
        operation_id="agents_x402_settled",
        request=X402SettledInputSerializer,
        responses={200: X402PaymentStateOutputSerializer},
    )
    def post(self, request: Request, agent_id: uuid.UUID, payment_id: uuid.UUID) -> Response:
        agent = selectors.agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        data = validate_input(X402SettledInputSerializer, request.data)
        payment = _payment_of(agent, payment_id)
        try:
            payment = x402_settlement_record(payment=payment, **data)
        except MalformedPaymentRequired as error:
            raise ValidationError({"payment_response": [str(error)]}) from error
        return Response(X402PaymentStateOutputSerializer(payment).data)


class X402PaymentListApi(APIView):
    pagination_class = DecidedCursorPagination

    @extend_schema(
        operation_id="agents_x402_payments_list",
        responses=X402PaymentStateOutputSerializer(many=True),
    )
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = selectors.agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        payments = X402Payment.objects.filter(agent=agent).select_related("vendor")
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(payments, request, view=self)
        return paginator.get_paginated_response(
            X402PaymentStateOutputSerializer(page, many=True).data
        )


class X402PaymentDetailApi(APIView):
    @extend_schema(
        operation_id="agents_x402_payments_retrieve",
        responses=X402PaymentStateOutputSerializer,
    )
    def get(self, request: Request, agent_id: uuid.UUID, payment_id: uuid.UUID) -> Response:
        agent = selectors.agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        return Response(X402PaymentStateOutputSerializer(_payment_of(agent, payment_id)).data)


def _payment_of(agent: Any, payment_id: uuid.UUID) -> X402Payment:
    """The agent's payment; 404 alike for another agent's and for none."""
    try:
        return X402Payment.objects.select_related("vendor").get(pk=payment_id, agent=agent)
    except X402Payment.DoesNotExist as exc:
        raise Http404("No such payment.") from exc


class WalletApi(APIView):
    @extend_schema(operation_id="agents_wallet", responses={200: WalletOutputSerializer})
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = selectors.agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        if not agent.policy.x402_allowed and not hasattr(agent, "usdc_wallet"):
            raise Http404("No wallet: the agent's policy does not allow x402.")
        wallet = wallet_ensure(agent=agent)
        body = {
            "address": wallet.address,
            "status": wallet.status,
            "networks": list(settings.AGENTWALLET_X402_NETWORKS),
            "asset": "USDC",
            "created_at": wallet.created_at,
        }
        return Response(WalletOutputSerializer(body).data)
