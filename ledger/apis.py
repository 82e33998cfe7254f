from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from ledger.selectors import agent_budget
from ledger.serializers import AgentBudgetOutputSerializer
from wallets.actors import actor_from_request
from wallets.selectors import agent_get_for_actor


class AgentBudgetApi(APIView):
    """Caps, spent and remaining for every window of the agent."""

    @extend_schema(operation_id="agents_budget", responses=AgentBudgetOutputSerializer)
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        budget = agent_budget(agent=agent)
        return Response(AgentBudgetOutputSerializer(AgentBudgetOutputSerializer.shape(budget)).data)
