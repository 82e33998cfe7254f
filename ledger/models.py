from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from djmoney.models.fields import MoneyField


class EntryKind(models.TextChoices):
    HOLD = "hold", "Hold"
    CAPTURE = "capture", "Capture"
    RELEASE = "release", "Release"
    REFUND = "refund", "Refund"
    X402_PAYMENT = "x402_payment", "x402 payment"


class Rail(models.TextChoices):
    CARD = "card", "Card"
    USDC = "usdc", "USDC"


# Kinds that add to spend; the others take it away.
SPEND_KINDS = (EntryKind.HOLD, EntryKind.CAPTURE, EntryKind.X402_PAYMENT)
CREDIT_KINDS = (EntryKind.RELEASE, EntryKind.REFUND)


class LedgerEntry(models.Model):
    """An immutable movement of money, attributed to an agent, vendor and trace.

    `cap_amount` is signed in the cap currency: spend kinds are positive, release and
    refund negative, so spend over any window is one SUM. A capture releases the
    hold it clears with its own release entry, so nothing is counted twice.
    """

    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    rail = models.CharField(max_length=8, choices=Rail.choices, default=Rail.CARD)
    agent = models.ForeignKey(
        "wallets.Agent", on_delete=models.PROTECT, related_name="ledger_entries"
    )
    card = models.ForeignKey(
        "cards.Card", on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_entries"
    )
    vendor = models.ForeignKey(
        "policies.Vendor",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
    )
    trace_id = models.CharField(max_length=128, blank=True, db_index=True)
    # What the merchant charged, in its currency.
    amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    # The same movement in the policy's cap currency, signed (see above).
    cap_amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    # cap currency units per merchant currency unit; 1 when they are the same.
    fx_rate = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal("1"))
    memo = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=EntryKind.values), name="ledger_ledgerentry_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(rail__in=Rail.values), name="ledger_ledgerentry_rail_valid"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=Decimal("0")), name="ledger_ledgerentry_amount_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=SPEND_KINDS, cap_amount__gte=Decimal("0"))
                | Q(kind__in=CREDIT_KINDS, cap_amount__lte=Decimal("0")),
                name="ledger_ledgerentry_sign_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(fx_rate__gt=Decimal("0")), name="ledger_ledgerentry_fx_rate_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["agent", "created_at"], name="ledger_entry_agent_time"),
            models.Index(fields=["card", "created_at"], name="ledger_entry_card_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.cap_amount} {self.agent_id}"
