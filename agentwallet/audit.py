"""Writing the audit journal (agentwallet.models.AuditEvent). Services call
`audit_record` inside their own transaction; nothing else writes audit rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agentwallet.models import AuditAction, AuditEvent

if TYPE_CHECKING:
    from cards.models import Card
    from wallets.models import Agent


def card_subject(card: Card) -> str:
    return f"card ••{card.last4} ({card.vendor.name})"


def audit_record(
    *,
    actor: str,
    action: AuditAction,
    subject: str,
    agent: Agent | None = None,
    agent_id: object = None,
    object_id: object = "",
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor=actor,
        action=action,
        subject=subject[:200],
        agent_id=agent.pk if agent is not None else agent_id,
        object_id=str(object_id),
        reason=reason,
        detail=dict(detail or {}),
    )


def audit_record_many(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    return AuditEvent.objects.bulk_create(list(events))
