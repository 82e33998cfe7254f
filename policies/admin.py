from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from policies import services
from policies.models import Policy, PolicyChange, PolicyVendorCap, Vendor
from wallets.actors import Actor


@admin.register(Vendor)
class VendorAdmin(admin.ModelAdmin[Vendor]):
    list_display = ["name", "slug", "category", "mcc_list", "is_curated", "created_at"]
    list_filter = ["category", "is_curated"]
    search_fields = ["name", "slug", "descriptors"]
    readonly_fields = ["created_at", "is_curated"]

    @admin.display(description="MCCs")
    def mcc_list(self, vendor: Vendor) -> str:
        return ", ".join(vendor.mccs)


class PolicyVendorCapInline(admin.TabularInline[PolicyVendorCap, Policy]):
    """Shown, not edited here: vendor caps change through PATCH /api/policies/{slug}."""

    model = PolicyVendorCap
    extra = 0
    fields = ["vendor", "monthly_cap"]
    readonly_fields = ["vendor", "monthly_cap"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PolicyChangeInline(admin.TabularInline[PolicyChange, Policy]):
    """Who changed which field, from what to what (append-only)."""

    model = PolicyChange
    extra = 0
    fields = ["changed_at", "actor", "field", "old_value", "new_value"]
    readonly_fields = fields
    ordering = ["-changed_at", "-id"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PolicyAdminForm(forms.ModelForm[Policy]):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        currency = self.instance.currency
        for field in services.CAP_FIELDS:
            money = cleaned.get(field)
            if money is not None and str(money.currency) != currency:
                self.add_error(field, f"Caps are in the policy's currency, {currency}.")
        return cleaned


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin[Policy]):
    list_display = [
        "name",
        "slug",
        "currency",
        "daily_cap",
        "monthly_cap",
        "per_trace_cap",
        "x402_allowed",
        "time_zone",
        "agent_count",
    ]
    list_filter = ["currency", "x402_allowed"]
    search_fields = ["name", "slug"]
    filter_horizontal = ["default_vendors"]
    form = PolicyAdminForm
    readonly_fields = ["slug", "currency", "created_at", "updated_at"]
    inlines = [PolicyVendorCapInline, PolicyChangeInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # POST /api/policies creates policies (policies.services.policy_create)

    def save_model(self, request: HttpRequest, obj: Policy, form: Any, change: bool) -> None:
        """Through the service, so the change is validated and recorded."""
        editable = (*services.PLAIN_FIELDS, *services.CAP_FIELDS, "default_vendors")
        changes: dict[str, Any] = {}
        for field in form.changed_data:
            if field not in editable:
                continue
            value = form.cleaned_data[field]
            if field in services.CAP_FIELDS:
                value = None if value is None else value.amount
            changes[field] = value
        services.policy_update(policy=obj, changes=changes, actor=Actor.for_user(request.user))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Default vendors went through the service in save_model (no form.save_m2m);
        the inlines are read-only, so saving them writes nothing."""
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    @admin.display(description="Agents")
    def agent_count(self, policy: Policy) -> int:
        return policy.agents.count()
