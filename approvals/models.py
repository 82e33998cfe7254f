from __future__ import annotations

from django.db import models
from django.db.models import Q
from djmoney.models.fields import MoneyField


class ApprovalScope(models.TextChoices):
    DAILY = "daily", "Daily (rolling 24h)"
    MONTHLY = "monthly", "Monthly"
    VENDOR = "vendor", "Card / vendor monthly"
    TRACE = "trace", "Trace"


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    DENIED = "denied", "Denied"
    EXPIRED = "expired", "Expired"


class ApprovalOrigin(models.TextChoices):
    DECLINE = "decline", "A cap decline"
    AGENT = "agent", "The agent asked ahead"


class DecisionChannel(models.TextChoices):
    SLACK = "slack", "Slack"
    PORTAL = "portal", "Portal"
    API = "api", "API"
    ADMIN = "admin", "Admin"
    SYSTEM = "system", "System (expiry)"


class ApprovalRequest(models.Model):
    """A request to raise one cap, raised by a cap decline (or asked for by an agent).

    Written in the decision's own transaction; delivery to Slack happens afterwards.
    """

    agent = models.ForeignKey(
        "wallets.Agent", on_delete=models.PROTECT, related_name="approval_requests"
    )
    scope = models.CharField(max_length=10, choices=ApprovalScope.choices)
    # Set for the vendor scope; the trace id for the trace scope.
    vendor = models.ForeignKey(
        "policies.Vendor", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    trace_id = models.CharField(max_length=128, blank=True)
    # scope plus what it is about ("daily", "vendor:openai", "trace:PR-1"): one open each.
    scope_key = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    cap_limit = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    spent = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    # The charge that hit the cap, in cap currency (the amount a lead would approve).
    requested_amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    triggering_authorization = models.ForeignKey(
        "ledger.Authorization", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    origin = models.CharField(
        max_length=8, choices=ApprovalOrigin.choices, default=ApprovalOrigin.DECLINE
    )
    declines_attached = models.PositiveIntegerField(default=1)
    reason = models.TextField(blank=True)
    # The decision: who, when, through which channel, with what note and amount.
    decided_by = models.CharField(max_length=200, blank=True)
    decided_via = models.CharField(max_length=8, choices=DecisionChannel.choices, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    approved_amount = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    # Where the Slack message lives, for updating it with the outcome.
    slack_channel = models.CharField(max_length=40, blank=True)
    slack_ts = models.CharField(max_length=40, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("approve_requests", "Can approve or deny cap requests for any agent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope__in=ApprovalScope.values), name="approvals_request_scope_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ApprovalStatus.values),
                name="approvals_request_status_valid",
            ),
            # Further declines attach to the open request instead of raising new ones.
            models.UniqueConstraint(
                fields=["agent", "scope_key"],
                condition=Q(status="pending"),
                name="approvals_request_one_open_per_scope",
            ),
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True)
                | (~Q(status="pending") & Q(decided_at__isnull=False)),
                name="approvals_request_decided_iff_not_pending",
            ),
            models.CheckConstraint(
                condition=~Q(status="approved")
                | Q(approved_amount__isnull=False, approved_amount__gt=0),
                name="approvals_request_approval_has_amount",
            ),
            models.CheckConstraint(
                condition=Q(requested_amount__gt=0), name="approvals_request_amount_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent} {self.scope} {self.status}"


class CapBump(models.Model):
    """Extra headroom on exactly one cap, granted by an approval, for a limited time."""

    agent = models.ForeignKey("wallets.Agent", on_delete=models.PROTECT, related_name="cap_bumps")
    approval = models.OneToOneField(ApprovalRequest, on_delete=models.PROTECT, related_name="bump")
    scope = models.CharField(max_length=10, choices=ApprovalScope.choices)
    scope_key = models.CharField(max_length=200)
    amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-valid_from", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="approvals_capbump_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(valid_until__gt=models.F("valid_from")),
                name="approvals_capbump_valid_window",
            ),
        ]
        indexes = [models.Index(fields=["agent", "valid_until"], name="approvals_bump_agent")]

    def __str__(self) -> str:
        return f"+{self.amount} on {self.scope_key} until {self.valid_until:%Y-%m-%d %H:%M}"


class Approver(models.Model):
    """A portal user known in Slack, so their button clicks can be trusted."""

    user = models.OneToOneField("auth.User", on_delete=models.CASCADE, related_name="approver")
    slack_user_id = models.CharField(max_length=32, unique=True)

    def __str__(self) -> str:
        return f"{self.user} ({self.slack_user_id})"


class OutboxKind(models.TextChoices):
    APPROVAL_REQUEST = "approval_request", "Approval request"
    APPROVAL_OUTCOME = "approval_outcome", "Approval outcome (message update)"
    EPHEMERAL = "ephemeral", "Ephemeral reply"
    WARNING = "warning", "Early warning"
    RUNAWAY = "runaway", "Runaway spend"
    SPRINT_REPORT = "sprint_report", "Sprint report"
    RECONCILIATION = "reconciliation", "Issuer reconciliation"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    HELD = "held", "Held (Slack not configured)"
    FAILED = "failed", "Failed (gave up)"


class OutboxMessage(models.Model):
    """A Slack message to deliver, written in the same transaction as its cause.

    Delivered by Celery afterwards, with retries; the idempotency key keeps one message
    per cause, and the row lock keeps two workers from sending it twice.
    """

    kind = models.CharField(max_length=20, choices=OutboxKind.choices)
    idempotency_key = models.CharField(max_length=255, unique=True)
    agent = models.ForeignKey(
        "wallets.Agent", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approval = models.ForeignKey(
        ApprovalRequest,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="outbox_messages",
    )
    channel = models.CharField(max_length=40, blank=True)
    # What to say, captured at the time of the cause (the blocks are built from it).
    payload = models.JSONField(default=dict)
    status = models.CharField(
        max_length=8, choices=OutboxStatus.choices, default=OutboxStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    slack_ts = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=OutboxKind.values), name="approvals_outbox_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=OutboxStatus.values), name="approvals_outbox_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="approvals_outbox_sent_has_time",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="approvals_outbox_due",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.status} ({self.idempotency_key})"
