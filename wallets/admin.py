from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from agentwallet.lib.money import from_cents
from cards.models import Card
from cards.services import agent_cards_freeze
from ledger.selectors import agents_with_spend
from wallets.actors import Actor
from wallets.models import Agent, ApiKey, Principal, TeamLead, UsdcWallet, X402Payment
from wallets.services import api_key_revoke

# We keep keys in our own model (wallets.ApiKey); hide the library's unused one.
admin.site.unregister(LibraryAPIKey)


class CardInline(admin.TabularInline[Card, Agent]):
    model = Card
    extra = 0
    can_delete = False
    fields = ["vendor", "last4", "status", "monthly_cap", "is_ephemeral", "trace_id", "expires_at"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Agent | None = None) -> bool:
        return False


@admin.register(Principal)
class PrincipalAdmin(admin.ModelAdmin[Principal]):
    list_display = ["email", "name", "slack_user_id", "created_at"]
    search_fields = ["email", "name", "slack_user_id"]


@admin.register(TeamLead)
class TeamLeadAdmin(admin.ModelAdmin[TeamLead]):
    """Which teams (principals) an engineering lead sees and acts on in the portal."""

    list_display = ["user", "principal", "created_at"]
    list_select_related = ["user", "principal"]
    raw_id_fields = ["user", "principal"]
    search_fields = ["user__username", "principal__email"]


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin[Agent]):
    list_display = [
        "name",
        "principal",
        "policy",
        "status",
        "spent_24h",
        "spent_month",
        "trace_id",
        "created_at",
    ]
    list_filter = ["status", "policy"]
    list_select_related = ["principal", "policy"]
    search_fields = ["name", "principal__email", "trace_id", "id"]
    # The team and the policy are set when an agent is provisioned: moving an agent to
    # another policy (its currency, its months) or team (the spend rollups are kept by
    # team: ledger.services.rollups) is not an edit of the row; there is no service yet.
    readonly_fields = [
        "id",
        "principal",
        "policy",
        "created_at",
        "updated_at",
        "trace_id",
        "trace_expires_at",
        "bumps_valid_until",
    ]
    inlines = [CardInline]
    actions = ["freeze_all_cards"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # provisioning (API or seed) creates agents with key and cards

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return agents_with_spend(Agent.objects.all(), now=timezone.now())

    @admin.display(description="Spent (rolling 24h)", ordering="spent_24h_cents")
    def spent_24h(self, agent: Agent) -> str:
        cents = agent.spent_24h_cents or 0  # type: ignore[attr-defined]
        return f"{from_cents(cents)} of {agent.policy.daily_cap}"

    @admin.display(description="Spent (30 days)", ordering="spent_30d_cents")
    def spent_month(self, agent: Agent) -> str:
        cents = agent.spent_30d_cents or 0  # type: ignore[attr-defined]
        return f"{from_cents(cents)} {agent.policy.currency}"

    @admin.action(description="Freeze all cards of selected agents")
    def freeze_all_cards(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        actor = Actor.for_user(request.user)
        frozen = sum(
            len(agent_cards_freeze(agent=agent, actor=actor, reason="Frozen from the admin"))
            for agent in queryset
        )
        self.message_user(request, f"Froze {frozen} card(s).", messages.SUCCESS)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ["name", "prefix", "kind", "agent", "revoked", "last_used_at", "created"]
    list_filter = ["kind", "revoked"]
    list_select_related = ["agent"]
    search_fields = ["name", "prefix", "agent__name"]
    fields = [
        "name",
        "prefix",
        "kind",
        "agent",
        "created_by",
        "created",
        "last_used_at",
        "expiry_date",
        "revoked",
        "revoked_at",
    ]
    readonly_fields = [
        "prefix",
        "kind",
        "agent",
        "created_by",
        "created",
        "last_used_at",
        "revoked",
        "revoked_at",
    ]
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are shown once: create them with manage.py create_api_key

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = Actor.for_user(request.user)
        for key in queryset:
            api_key_revoke(api_key=key, actor=actor)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(UsdcWallet)
class UsdcWalletAdmin(admin.ModelAdmin[UsdcWallet]):
    """Addresses only: the key is sealed and never shown, here or anywhere."""

    list_display = ["address", "agent", "status", "created_at"]
    list_filter = ["status"]
    list_select_related = ["agent"]
    search_fields = ["address", "agent__name"]
    fields = ["agent", "address", "status", "created_at"]
    readonly_fields = fields  # freezing goes through the agent's kill switch

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # made with the agent (or its first payment)

    def has_delete_permission(self, request: HttpRequest, obj: UsdcWallet | None = None) -> bool:
        return False


@admin.register(X402Payment)
class X402PaymentAdmin(admin.ModelAdmin[X402Payment]):
    """Every x402 payment asked for, signed or declined: history, never edited."""

    list_display = [
        "decided_at",
        "agent",
        "status",
        "reason",
        "cap_amount",
        "network",
        "pay_to",
        "trace_id",
        "settlement_transaction",
    ]
    list_filter = ["status", "reason", "network", "x402_version"]
    list_select_related = ["agent"]
    search_fields = ["id", "pay_to", "trace_id", "resource_url", "settlement_transaction"]
    date_hierarchy = "decided_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: X402Payment | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: X402Payment | None = None) -> bool:
        return False
