from __future__ import annotations

import uuid

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentwallet.api.fields import validate_input
from agentwallet.api.pagination import CreatedCursorPagination
from cards.serializers import IssuedCardOutputSerializer
from wallets import selectors, services
from wallets.actors import actor_from_request
from wallets.permissions import require_staff
from wallets.serializers import (
    AgentOutputSerializer,
    AgentProvisionInputSerializer,
    AgentProvisionOutputSerializer,
    AgentTraceInputSerializer,
)


class AgentListCreateApi(APIView):
    """Agents: staff see all and provision; an agent key sees only itself."""

    pagination_class = CreatedCursorPagination

    @extend_schema(operation_id="agents_list", responses=AgentOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        agents = selectors.agent_list_for_actor(actor=actor_from_request(request))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(agents, request, view=self)
        context = {"now": timezone.now()}
        return paginator.get_paginated_response(
            AgentOutputSerializer(page, many=True, context=context).data
        )

    @extend_schema(
        operation_id="agents_provision",
        request=AgentProvisionInputSerializer,
        responses={201: AgentProvisionOutputSerializer},
    )
    def post(self, request: Request) -> Response:
        actor = actor_from_request(request)
        require_staff(actor)
        data = validate_input(AgentProvisionInputSerializer, request.data)
        provisioned = services.agent_provision(actor=actor, **data)
        body = AgentProvisionOutputSerializer(
            {
                "agent": provisioned.agent,
                "api_key": provisioned.raw_key,
                "cards": [IssuedCardOutputSerializer.shape(card) for card in provisioned.cards],
            },
            context={"now": timezone.now()},
        ).data
        return Response(body, status=status.HTTP_201_CREATED)


class AgentDetailApi(APIView):
    @extend_schema(operation_id="agents_retrieve", responses=AgentOutputSerializer)
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = selectors.agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        return Response(AgentOutputSerializer(agent, context={"now": timezone.now()}).data)


class AgentTraceApi(APIView):
    """The agent's active trace context: charges with no trace of their own get it."""

    @extend_schema(
        operation_id="agents_trace_set",
        request=AgentTraceInputSerializer,
        responses=AgentOutputSerializer,
    )
    def put(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = selectors.agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        data = validate_input(AgentTraceInputSerializer, request.data)
        agent = services.agent_trace_set(agent=agent, **data)
        return Response(AgentOutputSerializer(agent, context={"now": timezone.now()}).data)

    @extend_schema(
        operation_id="agents_trace_clear", request=None, responses={200: AgentOutputSerializer}
    )
    def delete(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = selectors.agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        agent = services.agent_trace_clear(agent=agent)
        return Response(AgentOutputSerializer(agent, context={"now": timezone.now()}).data)
