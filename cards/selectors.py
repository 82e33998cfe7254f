from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.http import Http404

from cards.models import Card
from wallets.models import Agent


def card_list_for_agent(*, agent: Agent) -> QuerySet[Card]:
    return (
        Card.objects.filter(agent=agent)
        .select_related("vendor")
        .order_by("vendor__name", "created_at")
    )


def card_get_for_agent(*, agent: Agent, card_id: uuid.UUID | str) -> Card:
    """The agent's card; 404 whether it is missing or belongs to someone else."""
    try:
        return Card.objects.select_related("vendor", "agent__policy").get(pk=card_id, agent=agent)
    except Card.DoesNotExist as exc:
        raise Http404("No such card.") from exc


def card_get(*, card_id: uuid.UUID) -> Card:
    """A card by id (for the network's postings, which name cards, not agents)."""
    return Card.objects.select_related("vendor").get(pk=card_id)
