"""The audit journal: one row per thing a person (or the system on their behalf) did to
money controls — freezes, approval decisions, cap bumps, keys, policies — with who, when,
what and why. Written by the apps' services in the same transaction as the change, so a
change and its audit row land together or not at all. Read by the portal's `/audit/`."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone


class AuditAction(models.TextChoices):
    AGENT_PROVISIONED = "agent.provisioned", "Agent provisioned"
    AGENT_FROZEN = "agent.frozen", "Agent frozen"
    AGENT_UNFROZEN = "agent.unfrozen", "Agent unfrozen"
    CARD_ISSUED = "card.issued", "Card issued"
    CARD_FROZEN = "card.frozen", "Card frozen"
    CARD_UNFROZEN = "card.unfrozen", "Card unfrozen"
    CARD_CLOSED = "card.closed", "Card closed"
    CARD_CAP_CHANGED = "card.cap_changed", "Card cap changed"
    CARD_LOCK_RESET = "card.lock_reset", "Merchant lock reset"
    KEY_CREATED = "key.created", "API key created"
    KEY_REVOKED = "key.revoked", "API key revoked"
    APPROVAL_GRANTED = "approval.granted", "Approval granted"
    APPROVAL_DENIED = "approval.denied", "Approval denied"
    APPROVAL_EXPIRED = "approval.expired", "Approval expired"
    CAP_BUMPED = "cap.bumped", "Cap bumped"
    POLICY_CREATED = "policy.created", "Policy created"
    POLICY_CHANGED = "policy.changed", "Policy changed"
    VENDOR_CREATED = "vendor.created", "Vendor added"
    PRINCIPAL_LINK_SENT = "principal.link_sent", "Verification link sent"
    PRINCIPAL_VERIFIED = "principal.verified", "Principal verified"


# Actions that must say why: a freeze stops an agent's work, so the reason is the record.
REASON_REQUIRED = (AuditAction.AGENT_FROZEN, AuditAction.CARD_FROZEN, AuditAction.CARD_LOCK_RESET)


class AuditEvent(models.Model):
    """Append-only. `subject` is what was acted on, readable on its own (the object may
    change later); `detail` holds the figures (amounts as strings, from → to)."""

    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=20, choices=AuditAction.choices)
    # No database foreign key: its check would take a KEY SHARE lock on the agent row,
    # and a freeze (card row locked, then this insert) would deadlock with a decision
    # (agent row locked, then the card row). Agents are never deleted (PROTECT elsewhere).
    agent = models.ForeignKey(
        "wallets.Agent",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    subject = models.CharField(max_length=200)
    object_id = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["agent", "-id"], name="audit_agent_newest"),
            models.Index(fields=["action", "-id"], name="audit_action_newest"),
            models.Index(fields=["at"], name="audit_at"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=AuditAction.values), name="audit_action_valid"
            ),
            models.CheckConstraint(
                condition=~Q(actor="") & ~Q(subject=""), name="audit_names_who_and_what"
            ),
            models.CheckConstraint(
                condition=~Q(action__in=REASON_REQUIRED) | ~Q(reason=""),
                name="audit_freeze_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.subject} by {self.actor}"

    def detail_items(self) -> list[tuple[str, str]]:
        """The details as readable (name, text) pairs: "500.00 USD", "a → b"."""
        return [(key.replace("_", " "), _readable(value)) for key, value in self.detail.items()]


def _readable(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, dict):
        if set(value) == {"amount", "currency"}:
            return f"{value['amount']} {value['currency']}"
        if set(value) == {"from", "to"}:
            return f"{_readable(value['from'])} → {_readable(value['to'])}"
        return ", ".join(f"{key} {_readable(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(_readable(item) for item in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
