from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.http import Http404

from wallets.actors import Actor
from wallets.models import Agent


def agent_list_for_actor(*, actor: Actor) -> QuerySet[Agent]:
    agents = Agent.objects.select_related("principal", "policy").order_by("name", "id")
    if actor.is_staff:
        return agents
    return agents.filter(pk=actor.agent_id) if actor.agent_id else agents.none()


def agent_get_for_actor(*, actor: Actor, agent_id: uuid.UUID) -> Agent:
    """The agent, if the actor may see it; 404 alike for missing and foreign ids."""
    if not actor.can_act_on(agent_id):
        raise Http404("No such agent.")
    try:
        return Agent.objects.select_related("principal", "policy").get(pk=agent_id)
    except Agent.DoesNotExist as exc:
        raise Http404("No such agent.") from exc
