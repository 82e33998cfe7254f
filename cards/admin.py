from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from agentwallet.lib.errors import Conflict
from cards.models import Card, CardEvent
from cards.services import card_freeze, card_merchant_lock_reset, card_unfreeze
from wallets.actors import Actor


class CardEventInline(admin.TabularInline[CardEvent, Card]):
    model = CardEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "kind", "actor", "reason"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Card | None = None) -> bool:
        return False


@admin.register(Card)
class CardAdmin(admin.ModelAdmin[Card]):
    list_display = [
        "masked",
        "agent",
        "vendor",
        "status",
        "monthly_cap",
        "is_ephemeral",
        "trace_id",
        "expires_at",
        "created_at",
    ]
    list_filter = ["status", "is_ephemeral", "single_use", "vendor", "issuer"]
    list_select_related = ["agent", "vendor"]
    search_fields = ["last4", "agent__name", "vendor__name", "trace_id", "issuer_card_id"]
    raw_id_fields = ["agent"]
    # The ciphertext and fingerprint are never shown; numbers appear as last four only.
    fields = [
        "agent",
        "vendor",
        "status",
        "last4",
        "exp_month",
        "exp_year",
        "issuer",
        "issuer_card_id",
        "allowed_mccs",
        "allowed_merchant_ids",
        "learned_merchant_id",
        "monthly_cap",
        "is_ephemeral",
        "single_use",
        "trace_id",
        "expires_at",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "agent",
        "vendor",
        "status",
        "last4",
        "exp_month",
        "exp_year",
        "issuer",
        "issuer_card_id",
        "is_ephemeral",
        "trace_id",
        "learned_merchant_id",
        "created_at",
        "updated_at",
    ]
    inlines = [CardEventInline]
    actions = ["freeze_selected", "unfreeze_selected", "reset_merchant_lock_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # cards are issued through provisioning or the API

    def has_delete_permission(self, request: HttpRequest, obj: Card | None = None) -> bool:
        return False

    @admin.display(description="Card", ordering="last4")
    def masked(self, card: Card) -> str:
        return f"•••• {card.last4}"

    @admin.action(description="Freeze selected cards")
    def freeze_selected(self, request: HttpRequest, queryset: QuerySet[Card]) -> None:
        actor = Actor.for_user(request.user)
        for card in queryset:
            card_freeze(card=card, actor=actor, reason="Frozen from the admin")
        self.message_user(request, f"Froze {queryset.count()} card(s).", messages.SUCCESS)

    @admin.action(description="Unfreeze selected cards")
    def unfreeze_selected(self, request: HttpRequest, queryset: QuerySet[Card]) -> None:
        actor = Actor.for_user(request.user)
        done = 0
        for card in queryset:
            try:
                card_unfreeze(card=card, actor=actor, reason="Unfrozen from the admin")
                done += 1
            except Conflict as exc:
                self.message_user(request, f"{card}: {exc}", messages.WARNING)
        self.message_user(request, f"Unfroze {done} card(s).", messages.SUCCESS)

    @admin.action(description="Reset the learned merchant lock of selected cards")
    def reset_merchant_lock_selected(self, request: HttpRequest, queryset: QuerySet[Card]) -> None:
        actor = Actor.for_user(request.user)
        reset = [
            card_merchant_lock_reset(card=card, actor=actor, reason="Reset from the admin")
            for card in queryset.exclude(learned_merchant_id="")
        ]
        self.message_user(request, f"Reset the merchant lock of {len(reset)} card(s).")


@admin.register(CardEvent)
class CardEventAdmin(admin.ModelAdmin[CardEvent]):
    """Append-only history: read-only here."""

    list_display = ["created_at", "card", "kind", "actor", "reason"]
    list_filter = ["kind"]
    list_select_related = ["card__vendor"]
    search_fields = ["actor", "reason", "card__last4", "card__agent__name"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CardEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CardEvent | None = None) -> bool:
        return False
