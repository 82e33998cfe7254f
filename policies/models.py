from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q
from djmoney.models.fields import MoneyField


class VendorCategory(models.TextChoices):
    CLOUD = "cloud", "Cloud"
    LLM = "llm", "LLM"
    ML_PLATFORM = "ml-platform", "ML platform"
    DEVTOOLS = "devtools", "Developer tools"
    OBSERVABILITY = "observability", "Observability"
    DATA = "data", "Data"
    PAYMENTS = "payments", "Payments"
    COMMUNICATIONS = "communications", "Communications"
    OTHER = "other", "Other"


class Vendor(models.Model):
    """A service agents may pay, with the card-network identity it charges under."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    category = models.CharField(
        max_length=20, choices=VendorCategory.choices, default=VendorCategory.OTHER
    )
    # Merchant category codes (4-digit strings), most likely first: the card's first lock.
    mccs = models.JSONField(default=list)
    # Statement descriptors, matched case-insensitively on prefixes.
    descriptors = models.JSONField(default=list, blank=True)
    # Verified card-acceptor (merchant network) ids of this vendor.
    network_ids = models.JSONField(default=list, blank=True)
    # The second lock's two layers, each of which can be switched off (some vendors bill
    # through resellers, under other names or merchant ids).
    descriptor_lock = models.BooleanField(
        default=True,
        help_text="Decline a charge whose merchant name matches none of the descriptors "
        "(when the vendor lists any).",
    )
    merchant_id_lock = models.BooleanField(
        default=True,
        help_text="Decline a charge from a merchant id other than the verified ones; with "
        "none verified, lock each card to the merchant id of its first approved charge.",
    )
    currencies = models.JSONField(default=list, blank=True)
    # The addresses it is paid at over x402 (checksummed): names the vendor of a payment.
    x402_pay_to = models.JSONField(default=list, blank=True)
    is_curated = models.BooleanField(default=False, help_text="Shipped with the product.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(category__in=VendorCategory.values),
                name="policies_vendor_category_valid",
            ),
            models.CheckConstraint(condition=~Q(slug=""), name="policies_vendor_slug_not_empty"),
            models.CheckConstraint(condition=~Q(name=""), name="policies_vendor_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


def default_warning_thresholds() -> list[int]:
    return [80, 95]


class RunawayAction(models.TextChoices):
    """What a runaway (spend far above its own hourly baseline) makes happen."""

    NOTIFY = "notify", "Tell Slack"
    FREEZE = "freeze", "Freeze the agent's cards and tell Slack"


class Policy(models.Model):
    """A named template of caps, all in one cap currency."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, default="USD")
    # Rolling 24 hours for the agent (a burst at 21:00 does not reset at midnight).
    daily_cap = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    # Calendar month in `time_zone`.
    monthly_cap = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    # Lifetime of one trace (PR, deploy, task) across all agents and vendors.
    per_trace_cap = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    per_authorization_cap = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    velocity_per_hour = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many authorizations per rolling hour (empty: no limit).",
    )
    x402_allowed = models.BooleanField(default=False)
    x402_per_call_cap = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    # Until the agent's principal has verified their email, its card charges above this
    # are declined (principal_unverified); empty: no such hold.
    unverified_charge_limit = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    # When not empty, x402 pays only these addresses (checksummed); empty: any payee.
    x402_payees = models.JSONField(default=list, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    # Early warnings: percent of any cap at which Slack hears once per cap and window.
    warning_thresholds = models.JSONField(default=default_warning_thresholds, blank=True)
    # Slack channel for this policy's approvals and warnings (empty: the default one).
    approvals_channel = models.CharField(max_length=40, blank=True)
    # How long an approved bump lasts: empty means the end of the day in `time_zone`.
    bump_valid_hours = models.PositiveIntegerField(null=True, blank=True)
    # A runaway of an agent on this policy (ledger.services.runaway): Slack only, or the
    # kill switch too.
    runaway = models.CharField(
        max_length=8, choices=RunawayAction.choices, default=RunawayAction.NOTIFY
    )
    default_vendors = models.ManyToManyField(Vendor, blank=True, related_name="default_in_policies")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"
        constraints = [
            models.CheckConstraint(
                condition=Q(daily_cap__gt=Decimal("0")), name="policies_policy_daily_cap_positive"
            ),
            models.CheckConstraint(
                condition=Q(monthly_cap__gt=Decimal("0")),
                name="policies_policy_monthly_cap_positive",
            ),
            models.CheckConstraint(
                condition=Q(per_trace_cap__isnull=True) | Q(per_trace_cap__gt=Decimal("0")),
                name="policies_policy_per_trace_cap_positive",
            ),
            models.CheckConstraint(
                condition=Q(per_authorization_cap__isnull=True)
                | Q(per_authorization_cap__gt=Decimal("0")),
                name="policies_policy_per_authorization_cap_positive",
            ),
            models.CheckConstraint(
                condition=Q(x402_per_call_cap__isnull=True) | Q(x402_per_call_cap__gt=Decimal("0")),
                name="policies_policy_x402_cap_positive",
            ),
            models.CheckConstraint(
                condition=Q(velocity_per_hour__isnull=True) | Q(velocity_per_hour__gt=0),
                name="policies_policy_velocity_positive",
            ),
            models.CheckConstraint(
                condition=Q(runaway__in=RunawayAction.values), name="policies_policy_runaway_valid"
            ),
            models.CheckConstraint(
                condition=Q(x402_allowed=False) | Q(x402_per_call_cap__isnull=False),
                name="policies_policy_x402_needs_cap",
            ),
            # Every cap is in the policy's one cap currency.
            models.CheckConstraint(
                condition=Q(daily_cap_currency=F("currency"))
                & Q(monthly_cap_currency=F("currency")),
                name="policies_policy_caps_in_policy_currency",
            ),
            models.CheckConstraint(
                condition=(Q(per_trace_cap__isnull=True) | Q(per_trace_cap_currency=F("currency")))
                & (
                    Q(per_authorization_cap__isnull=True)
                    | Q(per_authorization_cap_currency=F("currency"))
                )
                & (Q(x402_per_call_cap__isnull=True) | Q(x402_per_call_cap_currency=F("currency"))),
                name="policies_policy_optional_caps_in_policy_currency",
            ),
            models.CheckConstraint(
                condition=Q(unverified_charge_limit__isnull=True)
                | (
                    Q(unverified_charge_limit__gt=Decimal("0"))
                    & Q(unverified_charge_limit_currency=F("currency"))
                ),
                name="policies_policy_unverified_limit_valid",
            ),
            models.CheckConstraint(
                condition=Q(bump_valid_hours__isnull=True) | Q(bump_valid_hours__gt=0),
                name="policies_policy_bump_hours_positive",
            ),
            models.CheckConstraint(
                condition=Q(daily_cap__lte=F("monthly_cap")),
                name="policies_policy_daily_within_monthly",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class PolicyVendorCap(models.Model):
    """A monthly cap for one vendor under a policy (each agent's card for it)."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="vendor_caps")
    vendor = models.ForeignKey(Vendor, on_delete=models.PROTECT, related_name="policy_caps")
    monthly_cap = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")

    class Meta:
        ordering = ["vendor__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "vendor"], name="policies_policyvendorcap_one_per_vendor"
            ),
            models.CheckConstraint(
                condition=Q(monthly_cap__gt=Decimal("0")),
                name="policies_policyvendorcap_cap_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vendor} {self.monthly_cap}/month under {self.policy}"


class PolicyChange(models.Model):
    """One field of a policy changed: who, when, from what to what. Append-only history,
    written by `policy_update` in the change's own transaction."""

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="changes")
    actor = models.CharField(max_length=200)
    field = models.CharField(max_length=50)
    # JSON: money as {"amount", "currency"}, vendors by slug, vendor caps by vendor slug.
    old_value = models.JSONField(null=True, blank=True)
    new_value = models.JSONField(null=True, blank=True)
    changed_at = models.DateTimeField()

    class Meta:
        ordering = ["-changed_at", "-id"]
        indexes = [
            models.Index(fields=["policy", "changed_at"], name="policies_change_policy_time")
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(field="") & ~Q(actor=""), name="policies_policychange_names_who_what"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy_id}.{self.field} by {self.actor} at {self.changed_at:%Y-%m-%d %H:%M}"
