from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import Q
from djmoney.models.fields import MoneyField


class CardStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    FROZEN = "frozen", "Frozen"
    CLOSED = "closed", "Closed"


class Card(models.Model):
    """One virtual card for one agent and one vendor, locked to that vendor.

    Only the last four digits are readable; the full number is encrypted at rest
    (for the issuer's reveal flow) and the CVC is never stored.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey("wallets.Agent", on_delete=models.PROTECT, related_name="cards")
    vendor = models.ForeignKey("policies.Vendor", on_delete=models.PROTECT, related_name="cards")
    status = models.CharField(max_length=8, choices=CardStatus.choices, default=CardStatus.ACTIVE)
    issuer = models.CharField(max_length=20)
    issuer_card_id = models.CharField(max_length=64)
    last4 = models.CharField(max_length=4)
    exp_month = models.PositiveSmallIntegerField()
    exp_year = models.PositiveSmallIntegerField()
    number_ciphertext = models.TextField(editable=False)
    # Keyed hash of the number: uniqueness without decrypting anything.
    number_fingerprint = models.CharField(max_length=64, editable=False)
    # First lock: the merchant category codes this card may be charged under.
    allowed_mccs = models.JSONField(default=list)
    # Optional second lock: specific card-acceptor ids (empty: any merchant in the MCCs).
    allowed_merchant_ids = models.JSONField(default=list, blank=True)
    # The merchant network id of the card's first approved charge, when its vendor has no
    # verified ids: later charges from another merchant id are declined. Staff may reset
    # it (recorded as a card event).
    learned_merchant_id = models.CharField(max_length=64, blank=True, default="")
    # The card's own monthly cap, in the policy currency; the policy's vendor cap
    # still applies, the lower one wins.
    monthly_cap = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    is_ephemeral = models.BooleanField(default=False)
    single_use = models.BooleanField(default=False)
    trace_id = models.CharField(max_length=128, blank=True, help_text="Bound trace, if any.")
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When the card stops working (ephemeral)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent", "vendor__name", "created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=CardStatus.values), name="cards_card_status_valid"
            ),
            models.UniqueConstraint(
                fields=["issuer", "issuer_card_id"], name="cards_card_issuer_id_unique"
            ),
            models.UniqueConstraint(fields=["number_fingerprint"], name="cards_card_number_unique"),
            # One open standing card per agent and vendor; ephemeral cards are extra.
            models.UniqueConstraint(
                fields=["agent", "vendor"],
                condition=Q(is_ephemeral=False) & ~Q(status=CardStatus.CLOSED),
                name="cards_card_one_open_per_agent_vendor",
            ),
            models.CheckConstraint(
                condition=Q(monthly_cap__isnull=True) | Q(monthly_cap__gt=Decimal("0")),
                name="cards_card_monthly_cap_positive",
            ),
            models.CheckConstraint(
                condition=Q(exp_month__gte=1) & Q(exp_month__lte=12),
                name="cards_card_exp_month_valid",
            ),
            models.CheckConstraint(
                condition=Q(is_ephemeral=False) | Q(expires_at__isnull=False),
                name="cards_card_ephemeral_expires",
            ),
        ]
        indexes = [models.Index(fields=["agent", "status"], name="cards_card_agent_status")]

    def __str__(self) -> str:
        return f"{self.vendor} •••• {self.last4}"

    @property
    def masked_number(self) -> str:
        return f"•••• •••• •••• {self.last4}"


class CardEventKind(models.TextChoices):
    ISSUED = "issued", "Issued"
    FROZEN = "frozen", "Frozen"
    UNFROZEN = "unfrozen", "Unfrozen"
    CLOSED = "closed", "Closed"
    MERCHANT_LOCK_RESET = "lock_reset", "Merchant lock reset"
    CAP_CHANGED = "cap_changed", "Monthly cap changed"


class CardEvent(models.Model):
    """Append-only history of a card: who did what, when and why."""

    card = models.ForeignKey(Card, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=16, choices=CardEventKind.choices)
    actor = models.CharField(max_length=200)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=CardEventKind.values), name="cards_cardevent_kind_valid"
            ),
            models.CheckConstraint(condition=~Q(actor=""), name="cards_cardevent_actor_not_empty"),
            models.CheckConstraint(
                condition=~Q(kind=CardEventKind.FROZEN) | ~Q(reason=""),
                name="cards_cardevent_freeze_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(kind=CardEventKind.MERCHANT_LOCK_RESET) | ~Q(reason=""),
                name="cards_cardevent_lock_reset_has_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.card} {self.kind} by {self.actor}"


class IssuerCardholder(models.Model):
    """The issuer's cardholder for one principal: every card of the principal's agents
    is issued to it (a team is one company cardholder at Stripe, its agents its cards)."""

    principal = models.ForeignKey(
        "wallets.Principal", on_delete=models.PROTECT, related_name="issuer_cardholders"
    )
    issuer = models.CharField(max_length=20)
    cardholder_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["issuer", "principal"], name="cards_issuercardholder_one_per_principal"
            ),
            models.UniqueConstraint(
                fields=["issuer", "cardholder_id"], name="cards_issuercardholder_id_unique"
            ),
            models.CheckConstraint(
                condition=~Q(cardholder_id=""), name="cards_issuercardholder_id_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.issuer} cardholder {self.cardholder_id}"
