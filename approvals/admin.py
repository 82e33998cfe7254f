from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agentwallet.lib.errors import Conflict
from approvals.delivery import outbox_deliver
from approvals.models import ApprovalRequest, Approver, CapBump, DecisionChannel, OutboxMessage
from approvals.services import approval_deny, approval_grant
from wallets.actors import Actor


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin[ApprovalRequest]):
    list_display = [
        "created_at",
        "agent",
        "scope",
        "scope_key",
        "status",
        "cap_limit",
        "spent",
        "requested_amount",
        "approved_amount",
        "declines_attached",
        "decided_by",
    ]
    list_filter = ["status", "scope", "origin", "decided_via"]
    list_select_related = ["agent"]
    search_fields = ["agent__name", "scope_key", "trace_id", "decided_by"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in ApprovalRequest._meta.fields]
    actions = ["approve_selected", "deny_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # raised by declines, or by agents asking ahead

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Approve selected (the requested amount)", permissions=["change"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Deny selected", permissions=["change"])
    def deny_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, approve=False)

    def _decide(
        self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], *, approve: bool
    ) -> None:
        if not request.user.has_perm("approvals.approve_requests"):
            self.message_user(
                request, "You need the 'approve requests' permission.", messages.ERROR
            )
            return
        label = Actor.for_user(request.user).label
        done = 0
        for approval in queryset:
            try:
                if approve:
                    approval_grant(request=approval, actor_label=label, via=DecisionChannel.ADMIN)
                else:
                    approval_deny(request=approval, actor_label=label, via=DecisionChannel.ADMIN)
                done += 1
            except Conflict as exc:
                self.message_user(request, f"#{approval.pk}: {exc}", messages.WARNING)
        self.message_user(
            request, f"{'Approved' if approve else 'Denied'} {done} request(s).", messages.SUCCESS
        )


@admin.register(CapBump)
class CapBumpAdmin(admin.ModelAdmin[CapBump]):
    list_display = ["valid_from", "agent", "scope_key", "amount", "valid_until", "approval"]
    list_select_related = ["agent"]
    search_fields = ["agent__name", "scope_key"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Approver)
class ApproverAdmin(admin.ModelAdmin[Approver]):
    list_display = ["user", "slack_user_id"]
    search_fields = ["user__username", "slack_user_id"]
    raw_id_fields = ["user"]


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin[OutboxMessage]):
    """The Slack outbox: what was sent, what waits (embedded mode keeps all here)."""

    list_display = [
        "created_at",
        "kind",
        "status",
        "channel",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
    ]
    list_filter = ["status", "kind"]
    search_fields = ["idempotency_key", "last_error"]
    readonly_fields = [field.name for field in OutboxMessage._meta.fields]
    actions = ["deliver_now"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Try to deliver now", permissions=["change"])
    def deliver_now(self, request: HttpRequest, queryset: QuerySet[OutboxMessage]) -> None:
        results = [outbox_deliver(message_id=message.pk).status for message in queryset]
        self.message_user(request, f"Delivery: {', '.join(results)}", messages.INFO)
