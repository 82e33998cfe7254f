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
    declines_attached = models.PositiveIntegerField(default=1)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
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
        ]

    def __str__(self) -> str:
        return f"{self.agent} {self.scope} {self.status}"
