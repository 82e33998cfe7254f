from __future__ import annotations

import uuid

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentwallet.api.fields import validate_input
from agentwallet.api.pagination import CreatedCursorPagination
from agentwallet.api.schema import error_response
from approvals import selectors, services
from approvals.models import ApprovalRequest, ApprovalScope, ApprovalStatus, DecisionChannel
from approvals.serializers import (
    ApprovalApproveInputSerializer,
    ApprovalAskInputSerializer,
    ApprovalDenyInputSerializer,
    ApprovalOutputSerializer,
)
from wallets.actors import actor_from_request
from wallets.permissions import require_staff
from wallets.selectors import agent_get_for_actor


class ApprovalFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ApprovalStatus.choices)
    scope = django_filters.ChoiceFilter(choices=ApprovalScope.choices)
    agent = django_filters.UUIDFilter(field_name="agent_id")
    trace_id = django_filters.CharFilter()

    class Meta:
        model = ApprovalRequest
        fields = ["status", "scope", "agent", "trace_id"]


DECIDED = error_response("The request is decided or expired already.")


class ApprovalListApi(APIView):
    pagination_class = CreatedCursorPagination

    @extend_schema(
        operation_id="approvals_list",
        parameters=[
            OpenApiParameter("status", str, enum=ApprovalStatus.values),
            OpenApiParameter("scope", str, enum=ApprovalScope.values),
            OpenApiParameter("agent", str),
            OpenApiParameter("trace_id", str),
            OpenApiParameter("cursor", str),
        ],
        responses=ApprovalOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        approvals = selectors.approval_list_for_actor(actor=actor_from_request(request))
        filterset = ApprovalFilter(request.query_params, queryset=approvals)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(ApprovalOutputSerializer(page, many=True).data)


class ApprovalDetailApi(APIView):
    @extend_schema(operation_id="approvals_retrieve", responses=ApprovalOutputSerializer)
    def get(self, request: Request, approval_id: int) -> Response:
        approval = selectors.approval_get_for_actor(
            actor=actor_from_request(request), approval_id=approval_id
        )
        return Response(ApprovalOutputSerializer(approval).data)


class ApprovalApproveApi(APIView):
    """Approve (staff): a bump on exactly that cap until the end of the policy's day."""

    @extend_schema(
        operation_id="approvals_approve",
        request=ApprovalApproveInputSerializer,
        responses={200: ApprovalOutputSerializer, 409: DECIDED},
    )
    def post(self, request: Request, approval_id: int) -> Response:
        actor = actor_from_request(request)
        approval = selectors.approval_get_for_actor(actor=actor, approval_id=approval_id)
        require_staff(actor)
        data = validate_input(ApprovalApproveInputSerializer, request.data)
        amount = data.get("amount")
        if amount is not None and str(amount.currency) != str(approval.requested_amount.currency):
            raise ValidationError(
                {"amount": f"Approve in the cap's currency {approval.requested_amount.currency}."}
            )
        approval = services.approval_grant(
            request=approval,
            actor_label=actor.label,
            via=_channel(request),
            amount=amount.amount if amount is not None else None,
            note=data["note"],
        )
        return Response(
            ApprovalOutputSerializer(
                selectors.approval_get_for_actor(actor=actor, approval_id=approval.pk)
            ).data
        )


class ApprovalDenyApi(APIView):
    @extend_schema(
        operation_id="approvals_deny",
        request=ApprovalDenyInputSerializer,
        responses={200: ApprovalOutputSerializer, 409: DECIDED},
    )
    def post(self, request: Request, approval_id: int) -> Response:
        actor = actor_from_request(request)
        approval = selectors.approval_get_for_actor(actor=actor, approval_id=approval_id)
        require_staff(actor)
        data = validate_input(ApprovalDenyInputSerializer, request.data)
        approval = services.approval_deny(
            request=approval, actor_label=actor.label, via=_channel(request), note=data["note"]
        )
        return Response(ApprovalOutputSerializer(approval).data)


def _channel(request: Request) -> str:
    return DecisionChannel.API if request.auth is not None else DecisionChannel.PORTAL


class AgentApprovalAskApi(APIView):
    """An agent asks ahead for more room on one cap."""

    @extend_schema(
        operation_id="agents_approvals_create",
        request=ApprovalAskInputSerializer,
        responses={
            201: ApprovalOutputSerializer,
            409: error_response(
                "The policy sets no such cap, or an open request for it exists already."
            ),
        },
    )
    def post(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        data = validate_input(
            ApprovalAskInputSerializer, request.data, context={"currency": agent.policy.currency}
        )
        approval = services.approval_request_ask(agent=agent, **data)
        return Response(ApprovalOutputSerializer(approval).data, status=status.HTTP_201_CREATED)
