from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models
from django.db.models import Q
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager


class Principal(models.Model):
    """The verified human (or team) accountable for one or more agents."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=100, blank=True)
    # Slack user id (U…/W…), used to recognise approvers in Slack.
    slack_user_id = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                fields=["slack_user_id"],
                condition=~Q(slack_user_id=""),
                name="wallets_principal_slack_user_unique",
            ),
            models.CheckConstraint(
                condition=~Q(email=""), name="wallets_principal_email_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.email


class TeamLead(models.Model):
    """A portal user who leads a principal's (a team's) agents: an engineering lead sees
    and acts on those agents only."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="team_leads")
    principal = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="leads")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "principal"], name="wallets_teamlead_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} leads {self.principal}"


class AgentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class Agent(models.Model):
    """A coding or CI agent with its own cards, caps and keys."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    principal = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="agents")
    policy = models.ForeignKey("policies.Policy", on_delete=models.PROTECT, related_name="agents")
    status = models.CharField(
        max_length=16, choices=AgentStatus.choices, default=AgentStatus.ACTIVE
    )
    # The agent's active trace context (PUT /api/agents/{id}/trace), with its expiry.
    trace_id = models.CharField(max_length=128, blank=True)
    trace_expires_at = models.DateTimeField(null=True, blank=True)
    # When the last granted cap bump lapses: lets a decision skip looking for bumps.
    bumps_valid_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AgentStatus.values), name="wallets_agent_status_valid"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="wallets_agent_name_not_empty"),
            models.UniqueConstraint(
                fields=["principal", "name"], name="wallets_agent_name_unique_per_principal"
            ),
            models.CheckConstraint(
                condition=Q(trace_id="", trace_expires_at__isnull=True)
                | (~Q(trace_id="") & Q(trace_expires_at__isnull=False)),
                name="wallets_agent_trace_context_complete",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def active_trace_at(self, when: datetime) -> str:
        """The trace context in force at `when`, or "" when none is (or it lapsed)."""
        if self.trace_id and self.trace_expires_at and self.trace_expires_at > when:
            return self.trace_id
        return ""


class ApiKeyKind(models.TextChoices):
    STAFF = "staff", "Staff"
    AGENT = "agent", "Agent"


class ApiKey(AbstractAPIKey):
    """A bearer key: stored as a SHA-512 hash; only its prefix stays readable.

    Agent keys act as their agent only; staff keys act on every agent.
    """

    kind = models.CharField(max_length=8, choices=ApiKeyKind.choices)
    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys"
    )
    created_by = models.CharField(max_length=200, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Updated at most once a minute, so authentication stays a read.
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = APIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ApiKeyKind.values), name="wallets_apikey_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind=ApiKeyKind.AGENT, agent__isnull=False)
                | Q(kind=ApiKeyKind.STAFF, agent__isnull=True),
                name="wallets_apikey_agent_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(revoked=False, revoked_at__isnull=True)
                | Q(revoked=True, revoked_at__isnull=False),
                name="wallets_apikey_revocation_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
