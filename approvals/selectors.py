from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from approvals.models import ApprovalRequest
from wallets.actors import Actor


def approval_list_for_actor(*, actor: Actor) -> QuerySet[ApprovalRequest]:
    requests = ApprovalRequest.objects.select_related("agent", "vendor", "bump")
    if actor.is_staff:
        return requests
    return requests.filter(agent_id=actor.agent_id) if actor.agent_id else requests.none()


def approval_get_for_actor(*, actor: Actor, approval_id: int) -> ApprovalRequest:
    """404 alike for a missing request and another agent's."""
    try:
        return approval_list_for_actor(actor=actor).get(pk=approval_id)
    except ApprovalRequest.DoesNotExist as exc:
        raise Http404("No such approval request.") from exc
