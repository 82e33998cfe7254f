from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ledger.models import LedgerEntry


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin[LedgerEntry]):
    """The ledger is append-only: read-only here."""

    list_display = [
        "created_at",
        "kind",
        "agent",
        "vendor",
        "amount",
        "cap_amount",
        "fx_rate",
        "rail",
        "trace_id",
    ]
    list_filter = ["kind", "rail", "vendor"]
    list_select_related = ["agent", "vendor"]
    search_fields = ["trace_id", "agent__name", "memo"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: LedgerEntry | None = None) -> bool:
        return False
