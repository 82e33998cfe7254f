from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.http import Http404

from agentwallet.lib.money import to_cents
from approvals.models import ApprovalRequest, CapBump
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


def bumps_by_scope(*, agent_id: object, now: datetime) -> dict[str, int]:
    """Cents of the bumps valid at `now`, per cap key (for the decision engine)."""
    rows = (
        CapBump.objects.filter(agent_id=agent_id, valid_from__lte=now, valid_until__gt=now)
        .values("scope_key")
        .annotate(total=Sum("amount"))
    )
    return {row["scope_key"]: to_cents(Decimal(row["total"])) for row in rows}


def card_bumps_in_force(*, now: datetime) -> dict[str, int]:
    """Cents of the bumps on cards' own caps valid at `now`, per card id."""
    rows = (
        CapBump.objects.filter(
            scope_key__startswith="card:", valid_from__lte=now, valid_until__gt=now
        )
        .values("scope_key")
        .annotate(total=Sum("amount"))
    )
    return {row["scope_key"].removeprefix("card:"): to_cents(Decimal(row["total"])) for row in rows}
