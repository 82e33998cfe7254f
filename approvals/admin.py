from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from approvals.models import ApprovalRequest


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
        "declines_attached",
    ]
    list_filter = ["status", "scope"]
    list_select_related = ["agent"]
    search_fields = ["agent__name", "scope_key", "trace_id"]
    readonly_fields = [field.name for field in ApprovalRequest._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # raised by declines (and, later, by agents asking ahead)

    def has_delete_permission(
        self, request: HttpRequest, obj: ApprovalRequest | None = None
    ) -> bool:
        return False
