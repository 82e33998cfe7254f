from __future__ import annotations

import logging
import uuid
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, StreamingHttpResponse
from djmoney.money import Money
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentwallet.api.fields import validate_input
from agentwallet.api.pagination import CreatedCursorPagination
from agentwallet.api.schema import error_response
from agentwallet.db import deadline
from agentwallet.lib.money import from_cents
from ledger import selectors, services
from ledger.filters import LedgerEntryFilter
from ledger.models import HoldState
from ledger.network import IsNetwork, NetworkSignatureAuthentication, payload_sha256
from ledger.renderers import LedgerCSVRenderer, LedgerJSONLinesRenderer
from ledger.serializers import (
    AgentBudgetOutputSerializer,
    LedgerEntryOutputSerializer,
    NetworkAuthorizationInputSerializer,
    NetworkCaptureInputSerializer,
    NetworkDecisionOutputSerializer,
    NetworkPostingOutputSerializer,
    NetworkRefundInputSerializer,
    NetworkReverseInputSerializer,
    TraceDetailOutputSerializer,
    TraceSummaryOutputSerializer,
)
from wallets.actors import actor_from_request
from wallets.selectors import agent_get_for_actor, x402_standing

logger = logging.getLogger("agentwallet.network")


class AgentBudgetApi(APIView):
    """Caps, spent and remaining for every window of the agent."""

    @extend_schema(operation_id="agents_budget", responses=AgentBudgetOutputSerializer)
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        budget = selectors.agent_budget(agent=agent)
        x402 = x402_standing(agent=agent)
        return Response(
            AgentBudgetOutputSerializer(AgentBudgetOutputSerializer.shape(budget, x402)).data
        )


class LedgerEntryPagination(CreatedCursorPagination):
    page_size = 100


LEDGER_FILTERS = [
    OpenApiParameter("agent", str),
    OpenApiParameter("card", str),
    OpenApiParameter("vendor", str),
    OpenApiParameter("trace_id", str),
    OpenApiParameter("rail", str, enum=["card", "usdc"]),
    OpenApiParameter("kind", str),
    OpenApiParameter("flag", str),
    OpenApiParameter("since", str, description="ISO 8601, inclusive"),
    OpenApiParameter("until", str, description="ISO 8601, exclusive"),
]


class LedgerListApi(APIView):
    """The ledger, newest first; agent keys see their own entries only."""

    pagination_class = LedgerEntryPagination

    @extend_schema(
        operation_id="ledger_list",
        parameters=[
            *LEDGER_FILTERS,
            OpenApiParameter("cursor", str),
            OpenApiParameter("page_size", int),
        ],
        responses=LedgerEntryOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        entries = selectors.ledger_entries_for_actor(actor=actor_from_request(request))
        filterset = LedgerEntryFilter(request.query_params, queryset=entries)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(LedgerEntryOutputSerializer(page, many=True).data)


class LedgerExportApi(APIView):
    """Every entry of the filter, oldest first, streamed in constant memory: CSV (the
    default) or JSON lines, one object per entry with the CSV's columns as keys. Agent
    keys export their own entries only."""

    renderer_classes = [LedgerCSVRenderer, LedgerJSONLinesRenderer]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force=force)
        except Http404:  # DRF's answer to a format it has no renderer for
            raise ValidationError({"format": ["Choose csv or jsonl."]}) from None

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        # Anything but the stream (an error, OPTIONS) is the API's JSON, whichever
        # format was asked for.
        if isinstance(response, Response):
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        operation_id="ledger_export",
        parameters=[
            OpenApiParameter("format", str, enum=["csv", "jsonl"], description="csv by default"),
            OpenApiParameter(
                "group_by",
                str,
                description="Sums per group instead of entries: distinct keys among trace, "
                "vendor, agent, card, rail, day, comma-separated (e.g. trace,vendor)",
            ),
            *LEDGER_FILTERS,
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/jsonl"): OpenApiTypes.STR,
            400: error_response("A filter or the format is not valid."),
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        try:
            export = selectors.ledger_export_for_actor(
                actor=actor_from_request(request), params=request.query_params
            )
        except selectors.InvalidExport as exc:
            raise ValidationError(exc.errors) from None
        renderer = request.accepted_renderer
        response = StreamingHttpResponse(
            renderer.stream(export), content_type=f"{renderer.media_type}; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="ledger.{renderer.format}"'
        return response


class TraceListApi(APIView):
    @extend_schema(operation_id="traces_list", responses=TraceSummaryOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        traces = selectors.trace_list_for_actor(actor=actor_from_request(request))
        return Response(TraceSummaryOutputSerializer(traces, many=True).data)


class TraceDetailApi(APIView):
    @extend_schema(operation_id="traces_retrieve", responses=TraceDetailOutputSerializer)
    def get(self, request: Request, trace_id: str) -> Response:
        detail = selectors.trace_detail_for_actor(
            actor=actor_from_request(request), trace_id=trace_id
        )
        return Response(TraceDetailOutputSerializer(detail).data)


# --- The card network (signed requests) -------------------------------------------


class NetworkApi(APIView):
    """The card network's endpoints. Every body is signed (`AgentWallet-Signature`, as
    Stripe signs webhooks; timestamps more than 5 minutes away refused) and carries the
    network's own event `id`, applied at most once."""

    authentication_classes = [NetworkSignatureAuthentication]
    permission_classes = [IsNetwork]

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        # The deadline runs from here: verifying, deciding and answering fit in it.
        with deadline.deadline(settings.AGENTWALLET_DECISION_DEADLINE_MS):
            return super().dispatch(request, *args, **kwargs)


EVENT_ID_TAKEN = error_response(
    "The event id was used already by another event, or by this event with another payload."
)
POSTING_UNAVAILABLE = error_response(
    "The database is down or did not answer within the deadline; send the event again."
)
POSTED = {
    201: NetworkPostingOutputSerializer,
    200: OpenApiResponse(NetworkPostingOutputSerializer, description="The same event again."),
    503: POSTING_UNAVAILABLE,
}


# Made once per process: DRF deep-copies a serializer's fields each time one is made,
# which cost this endpoint, which every card swipe waits on, more CPU than validating and
# rendering (about 0.33 ms of 2.2 per request; bench/README.md). They are used only
# through run_validation and to_representation, which keep no state between requests.
_AUTHORIZATION_INPUT = NetworkAuthorizationInputSerializer()
_DECISION_OUTPUT = NetworkDecisionOutputSerializer()


class NetworkAuthorizationCreateApi(NetworkApi):
    """Approve or decline a card authorization in real time, within
    AGENTWALLET_DECISION_DEADLINE_MS. Fails closed: a database that is down or does not
    answer in time gives a decline (`system_unavailable`). The same `id` again with the
    same payload answers the first decision (`replayed: true`); with another payload, or
    an id a capture, reversal or refund used, 409."""

    @extend_schema(
        operation_id="network_authorizations_create",
        request=NetworkAuthorizationInputSerializer,
        responses={200: NetworkDecisionOutputSerializer, 409: EVENT_ID_TAKEN},
    )
    def post(self, request: Request) -> Response:
        data = _AUTHORIZATION_INPUT.run_validation(request.data)
        merchant = data["merchant"]
        auth_request = services.AuthorizationRequest(
            network_id=data["id"],
            card_id=data["card_id"],
            amount=data["amount"].amount,
            currency=str(data["amount"].currency),
            merchant_mcc=merchant["mcc"],
            merchant_name=merchant["name"],
            merchant_network_id=merchant["network_id"],
            merchant_country=merchant["country"],
            trace_id=data["trace_id"],
            payload_sha256=payload_sha256(request.data),
        )
        try:
            outcome = services.authorization_decide(request=auth_request)
        except DatabaseError as exc:
            if isinstance(exc, OperationalError | InterfaceError):  # down, cut off, timed out
                logger.warning(
                    "authorization %s declined: database unavailable (%s)", data["id"], exc
                )
            else:  # anything else is a bug: its traceback is wanted
                logger.exception("authorization %s declined: database error", data["id"])
            outcome = services.AuthorizationOutcome(
                decided=services.Decided.unavailable(network_id=data["id"])
            )
        return Response(_DECISION_OUTPUT.to_representation(outcome))


def _posting_body(outcome: services.PostingOutcome) -> dict[str, Any]:
    auth = outcome.authorization
    held = None
    if auth is not None and auth.cap_amount is not None and outcome.hold_state != HoldState.NONE:
        held = Money(from_cents(outcome.held_cents or 0), auth.cap_amount.currency)
    return NetworkPostingOutputSerializer(
        {
            "authorization_id": auth.network_id if auth else None,
            "hold_state": outcome.hold_state,
            "held": held,
            "entries": outcome.entries,
            "replayed": outcome.replayed,
        }
    ).data


class NetworkAuthorizationCaptureApi(NetworkApi):
    """Clearing: always recorded (partial, several, over the hold, or forced). 201 the
    first time, 200 with `replayed: true` for the same event again."""

    @extend_schema(
        operation_id="network_authorizations_capture",
        request=NetworkCaptureInputSerializer,
        responses={
            **POSTED,
            409: error_response("The event id is taken, or the capture is in another currency."),
        },
    )
    def post(self, request: Request, network_id: str) -> Response:
        data = validate_input(NetworkCaptureInputSerializer, request.data)
        money = data["amount"]
        digest = payload_sha256(request.data)
        try:
            outcome = services.authorization_capture(
                network_id=network_id,
                amount=money.amount,
                currency=str(money.currency),
                network_txn_id=data["id"],
                payload_sha256=digest,
            )
        except services.NotFoundError as exc:
            if "card_id" not in data:
                raise NotFound(
                    f"{exc} Send card_id to post a capture we never authorized."
                ) from exc
            try:
                outcome = services.capture_without_authorization(
                    card_id=data["card_id"],
                    amount=money.amount,
                    currency=str(money.currency),
                    network_txn_id=data["id"],
                    trace_id=data["trace_id"],
                    network_id=network_id,
                    payload_sha256=digest,
                )
            except services.NotFoundError as missing:
                raise NotFound(str(missing)) from missing
        code = status.HTTP_200_OK if outcome.replayed else status.HTTP_201_CREATED
        return Response(_posting_body(outcome), status=code)


class NetworkAuthorizationReverseApi(NetworkApi):
    """Release all or part of an open hold. 201 the first time, 200 with
    `replayed: true` for the same event again; 409 when nothing is held any more."""

    @extend_schema(
        operation_id="network_authorizations_reverse",
        request=NetworkReverseInputSerializer,
        responses={
            **POSTED,
            409: error_response(
                "Nothing is held any more, the amount is in another currency, or the event "
                "id is taken."
            ),
        },
    )
    def post(self, request: Request, network_id: str) -> Response:
        data = validate_input(NetworkReverseInputSerializer, request.data)
        money = data.get("amount")
        try:
            outcome = services.authorization_reverse(
                network_id=network_id,
                amount=money.amount if money else None,
                currency=str(money.currency) if money else None,
                network_txn_id=data["id"],
                payload_sha256=payload_sha256(request.data),
            )
        except services.NotFoundError as exc:
            raise NotFound(str(exc)) from exc
        code = status.HTTP_200_OK if outcome.replayed else status.HTTP_201_CREATED
        return Response(_posting_body(outcome), status=code)


class NetworkRefundApi(NetworkApi):
    """Money back from a merchant: linked to an authorization it gives back what was
    captured there; unlinked it is recorded and creates no headroom."""

    @extend_schema(
        operation_id="network_refunds_create",
        request=NetworkRefundInputSerializer,
        responses={
            **POSTED,
            404: error_response("No such card, or no such authorization on it."),
            409: error_response("The event id is taken, or the refund is in another currency."),
        },
    )
    def post(self, request: Request) -> Response:
        data = validate_input(NetworkRefundInputSerializer, request.data)
        money = data["amount"]
        try:
            outcome = services.refund_record(
                card_id=data["card_id"],
                amount=money.amount,
                currency=str(money.currency),
                network_txn_id=data["id"],
                authorization_network_id=data.get("authorization_id"),
                payload_sha256=payload_sha256(request.data),
            )
        except services.NotFoundError as exc:
            raise NotFound(str(exc)) from exc
        code = status.HTTP_200_OK if outcome.replayed else status.HTTP_201_CREATED
        return Response(_posting_body(outcome), status=code)
