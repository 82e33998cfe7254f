from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from ledger.fx import fx_warning
from ledger.models import (
    Authorization,
    FxSnapshot,
    IssuerReconciliation,
    LedgerEntry,
    Runaway,
    SprintCalendar,
    SprintReport,
)


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Append-only history: viewable, never editable here."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LedgerEntryInline(admin.TabularInline[LedgerEntry, Authorization]):
    model = LedgerEntry
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "flag", "amount", "cap_amount", "fx_rate", "memo"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Authorization)
class AuthorizationAdmin(ReadOnlyAdmin):
    list_display = [
        "decided_at",
        "network_id",
        "agent",
        "vendor",
        "amount",
        "cap_amount",
        "decision",
        "reason",
        "hold_state",
        "trace_id",
    ]
    list_filter = ["decision", "reason", "hold_state", "vendor"]
    list_select_related = ["agent", "vendor"]
    search_fields = ["network_id", "trace_id", "agent__name", "merchant_name"]
    date_hierarchy = "decided_at"
    inlines = [LedgerEntryInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "kind",
        "flag",
        "agent",
        "vendor",
        "amount",
        "cap_amount",
        "fx_rate",
        "rail",
        "trace_id",
    ]
    list_filter = ["kind", "flag", "rail", "vendor"]
    list_select_related = ["agent", "vendor"]
    search_fields = ["trace_id", "agent__name", "memo", "network_txn_id"]
    date_hierarchy = "created_at"


@admin.register(FxSnapshot)
class FxSnapshotAdmin(ReadOnlyAdmin):
    list_display = ["loaded_at", "backend", "rates_date", "currencies", "source"]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponseBase:
        warning = fx_warning()
        if warning:
            messages.warning(request, warning)
        return super().changelist_view(request, extra_context)


@admin.register(Runaway)
class RunawayAdmin(ReadOnlyAdmin):
    """What the runaway sweep flagged (ledger.services.runaway)."""

    list_display = ["detected_at", "subject", "subject_key", "rate", "baseline", "currency"]
    list_filter = ["subject", "currency"]
    search_fields = ["subject_key", "trace_id"]
    date_hierarchy = "detected_at"


@admin.register(SprintCalendar)
class SprintCalendarAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """The organisation's sprints (one row): their first day, length and time zone."""

    list_display = ["first_day", "length_days", "time_zone"]
    fields = ["first_day", "length_days", "time_zone"]  # not the one row's id

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SprintCalendar.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(SprintReport)
class SprintReportAdmin(ReadOnlyAdmin):
    """Built by beat, the portal and `manage.py sprint_report` (ledger.services.reports)."""

    list_display = ["first_day", "starts_at", "ends_at", "built_at"]
    date_hierarchy = "first_day"


@admin.register(IssuerReconciliation)
class IssuerReconciliationAdmin(ReadOnlyAdmin):
    """Written by the nightly task and `manage.py reconcile_issuer`
    (ledger.services.reconciliation)."""

    list_display = ["day", "issuer", "authorizations", "transactions", "cards", "mismatch_count"]
    list_filter = ["issuer"]
    date_hierarchy = "day"
    fields = ["issuer", "day", "ran_at", "authorizations", "transactions", "cards", "mismatch_list"]
    readonly_fields = fields

    @admin.display(description="Mismatches")
    def mismatch_count(self, run: IssuerReconciliation) -> int:
        return len(run.mismatches)

    @admin.display(description="What differs")
    def mismatch_list(self, run: IssuerReconciliation) -> str:
        return (
            "\n".join(
                f"{row['kind']} {row['object_id']}: {row['detail']}" for row in run.mismatches
            )
            or "Nothing."
        )
