"""The audit journal in the admin: read-only, as it is append-only."""

from __future__ import annotations

from django.contrib import admin

from agentwallet.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("at", "actor", "action", "subject", "agent", "reason")
    list_filter = ("action",)
    search_fields = ("actor", "subject", "reason", "object_id")
    list_select_related = ("agent",)
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
