from __future__ import annotations

from django.contrib import admin

from policies.models import Policy, PolicyVendorCap, Vendor


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
    model = PolicyVendorCap
    extra = 0
    autocomplete_fields = ["vendor"]


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
    readonly_fields = ["created_at", "updated_at"]
    inlines = [PolicyVendorCapInline]

    @admin.display(description="Agents")
    def agent_count(self, policy: Policy) -> int:
        return policy.agents.count()
