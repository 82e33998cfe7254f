from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.db import models
from django.db.models import Q
from djmoney.models.fields import MoneyField
from rest_framework_api_key.models import AbstractAPIKey, APIKeyManager


class Principal(models.Model):
    """The verified human (or team) accountable for one or more agents."""

    email = models.EmailField(unique=True)
    name = models.CharField(max_length=100, blank=True)
    # Slack user id (U…/W…), used to recognise approvers in Slack.
    slack_user_id = models.CharField(max_length=32, blank=True)
    # When they followed the signed link mailed to them (wallets.verification); until
    # then a policy may hold their agents' card charges to a small amount.
    email_verified_at = models.DateTimeField(null=True, blank=True)
    # When the last link was mailed: a new one at most once a minute (no mail bombs).
    verification_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                fields=["slack_user_id"],
                condition=~Q(slack_user_id=""),
                name="wallets_principal_slack_user_unique",
            ),
            models.CheckConstraint(
                condition=~Q(email=""), name="wallets_principal_email_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return self.name or self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None


class TeamLead(models.Model):
    """A portal user who leads a principal's (a team's) agents: an engineering lead sees
    and acts on those agents only."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="team_leads")
    principal = models.ForeignKey(Principal, on_delete=models.CASCADE, related_name="leads")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "principal"], name="wallets_teamlead_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} leads {self.principal}"


class AgentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class Agent(models.Model):
    """A coding or CI agent with its own cards, caps and keys."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    principal = models.ForeignKey(Principal, on_delete=models.PROTECT, related_name="agents")
    policy = models.ForeignKey("policies.Policy", on_delete=models.PROTECT, related_name="agents")
    status = models.CharField(
        max_length=16, choices=AgentStatus.choices, default=AgentStatus.ACTIVE
    )
    # The agent's active trace context (PUT /api/agents/{id}/trace), with its expiry.
    trace_id = models.CharField(max_length=128, blank=True)
    trace_expires_at = models.DateTimeField(null=True, blank=True)
    # When the last granted cap bump lapses: lets a decision skip looking for bumps.
    bumps_valid_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AgentStatus.values), name="wallets_agent_status_valid"
            ),
            models.CheckConstraint(condition=~Q(name=""), name="wallets_agent_name_not_empty"),
            models.UniqueConstraint(
                fields=["principal", "name"], name="wallets_agent_name_unique_per_principal"
            ),
            models.CheckConstraint(
                condition=Q(trace_id="", trace_expires_at__isnull=True)
                | (~Q(trace_id="") & Q(trace_expires_at__isnull=False)),
                name="wallets_agent_trace_context_complete",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def active_trace_at(self, when: datetime) -> str:
        """The trace context in force at `when`, or "" when none is (or it lapsed)."""
        if self.trace_id and self.trace_expires_at and self.trace_expires_at > when:
            return self.trace_id
        return ""


class ApiKeyKind(models.TextChoices):
    STAFF = "staff", "Staff"
    AGENT = "agent", "Agent"


class ApiKey(AbstractAPIKey):
    """A bearer key: stored as a SHA-512 hash; only its prefix stays readable.

    Agent keys act as their agent only; staff keys act on every agent.
    """

    kind = models.CharField(max_length=8, choices=ApiKeyKind.choices)
    agent = models.ForeignKey(
        Agent, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys"
    )
    created_by = models.CharField(max_length=200, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Updated at most once a minute, so authentication stays a read.
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = APIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ApiKeyKind.values), name="wallets_apikey_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(kind=ApiKeyKind.AGENT, agent__isnull=False)
                | Q(kind=ApiKeyKind.STAFF, agent__isnull=True),
                name="wallets_apikey_agent_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(revoked=False, revoked_at__isnull=True)
                | Q(revoked=True, revoked_at__isnull=False),
                name="wallets_apikey_revocation_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class WalletStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    FROZEN = "frozen", "Frozen"  # with the agent's cards: the kill switch stops x402 too


class UsdcWallet(models.Model):
    """An agent's own EVM account, paying x402 APIs in USDC.

    The private key is encrypted at rest (wallets.x402.keys) and never leaves the server:
    no API, page or export shows it, only the address.
    """

    agent = models.OneToOneField(
        Agent, on_delete=models.PROTECT, primary_key=True, related_name="usdc_wallet"
    )
    address = models.CharField(max_length=42, unique=True)
    private_key_encrypted = models.TextField(editable=False)
    status = models.CharField(
        max_length=8, choices=WalletStatus.choices, default=WalletStatus.ACTIVE
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "USDC wallet"
        constraints = [
            models.CheckConstraint(
                condition=Q(address__regex=r"^0x[0-9a-fA-F]{40}$"),
                name="wallets_usdcwallet_address_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=WalletStatus.values), name="wallets_usdcwallet_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.address


class X402PaymentStatus(models.TextChoices):
    DECLINED = "declined", "Declined"  # nothing signed
    SIGNED = "signed", "Signed"  # counts as spent: the server may settle it
    SETTLED = "settled", "Settled"  # the server says it settled, with its transaction
    FAILED = "failed", "Failed"  # the server says it did not; released after valid-before
    RELEASED = "released", "Released"  # never settled: its spend was given back


class X402Payment(models.Model):
    """One x402 payment an agent asked for: decided once per idempotency key, like a card
    authorization, and signed only once approved and in the ledger. The money is the
    ledger entry (`entry`, rail usdc); this row is what x402 needs around it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(
        Agent, on_delete=models.PROTECT, related_name="x402_payments", db_index=False
    )
    idempotency_key = models.CharField(max_length=255)
    # SHA-256 of the request body: the same key with another body is a conflict.
    request_sha256 = models.CharField(max_length=64)
    status = models.CharField(max_length=8, choices=X402PaymentStatus.choices)
    reason = models.CharField(max_length=40, blank=True)  # the decline's code
    x402_version = models.PositiveSmallIntegerField()
    network = models.CharField(max_length=20, blank=True)  # CAIP-2
    pay_to = models.CharField(max_length=42, blank=True)
    # USDC's smallest unit, exactly (6 decimals); null when no requirement was payable.
    atomic_amount = models.DecimalField(max_digits=30, decimal_places=0, null=True, blank=True)
    # The payment in the cap currency, rounded up to the cent, with the rate (USD to it).
    cap_amount = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    fx_rate = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    resource_url = models.CharField(max_length=2000)
    trace_id = models.CharField(max_length=128, blank=True)
    vendor = models.ForeignKey(
        "policies.Vendor", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The cap that declined it (as Authorization's), and the approval request it raised.
    cap_scope = models.CharField(max_length=20, blank=True)
    cap_limit = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    cap_remaining = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    approval_request = models.ForeignKey(
        "approvals.ApprovalRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="declined_x402_payments",
    )
    # The EIP-3009 authorization it signs: nonce (32 bytes hex) and window. The signature
    # itself is never stored (a bearer instrument until valid_before): it is signed after
    # the commit, and signed again, the same (deterministic ECDSA), for a replay.
    nonce = models.CharField(max_length=66, null=True, blank=True)
    valid_after = models.DateTimeField(null=True, blank=True)
    valid_before = models.DateTimeField(null=True, blank=True)
    header_name = models.CharField(max_length=20, blank=True)
    entry = models.OneToOneField(
        "ledger.LedgerEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    release_entry = models.OneToOneField(
        "ledger.LedgerEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # A success reported after the release: the spend counted again.
    late_entry = models.OneToOneField(
        "ledger.LedgerEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # What the server reported (PAYMENT-RESPONSE): its transaction, or why it failed.
    settlement_transaction = models.CharField(max_length=130, blank=True)
    settlement_error = models.CharField(max_length=200, blank=True)
    settlement_reported_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-decided_at", "-id"]
        verbose_name = "x402 payment"
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "idempotency_key"], name="wallets_x402payment_one_per_key"
            ),
            # The token refuses a nonce twice; we never sign one twice.
            models.UniqueConstraint(
                fields=["agent", "nonce"],
                condition=Q(nonce__isnull=False),
                name="wallets_x402payment_nonce_unique",
            ),
            models.CheckConstraint(
                condition=Q(status__in=X402PaymentStatus.values),
                name="wallets_x402payment_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(x402_version__in=[1, 2]), name="wallets_x402payment_version_valid"
            ),
            models.CheckConstraint(
                condition=(Q(status="declined") & ~Q(reason="") & Q(entry__isnull=True))
                | (
                    ~Q(status="declined")
                    & Q(reason="")
                    & Q(entry__isnull=False)
                    & Q(nonce__isnull=False)
                    & Q(valid_after__isnull=False, valid_before__isnull=False)
                    & ~Q(header_name="")
                ),
                name="wallets_x402payment_signed_only_when_recorded",
            ),
            # Released once, with its entry; settled after that only with the spend again.
            models.CheckConstraint(
                condition=Q(
                    status="released",
                    release_entry__isnull=False,
                    released_at__isnull=False,
                    late_entry__isnull=True,
                )
                | Q(status="settled", release_entry__isnull=False, late_entry__isnull=False)
                | (
                    ~Q(status="released")
                    & Q(
                        release_entry__isnull=True,
                        released_at__isnull=True,
                        late_entry__isnull=True,
                    )
                ),
                name="wallets_x402payment_released_once",
            ),
            models.CheckConstraint(
                condition=Q(atomic_amount__isnull=True) | Q(atomic_amount__gt=0),
                name="wallets_x402payment_amount_positive",
            ),
        ]
        indexes = [
            models.Index(fields=["agent", "decided_at"], name="wallets_x402_agent_time"),
            # The release sweep: payments still counted as spent, by valid-before.
            models.Index(
                fields=["valid_before"],
                name="wallets_x402_unsettled",
                condition=Q(status__in=["signed", "failed"]),
            ),
        ]

    def __str__(self) -> str:
        return f"x402 {self.status} {self.cap_amount} to {self.pay_to or '?'}"

    @property
    def usdc_amount(self) -> Decimal | None:
        """The price in USDC, exact: cents at least, more decimals (up to USDC's 6) only
        when it has them."""
        if self.atomic_amount is None:
            return None
        amount = Decimal(self.atomic_amount).scaleb(-6).normalize()
        return amount.quantize(Decimal("0.01")) if amount.as_tuple().exponent > -2 else amount

    @property
    def pay_to_short(self) -> str:
        """0x2096…287C: enough to tell payees apart at a glance."""
        return f"{self.pay_to[:6]}…{self.pay_to[-4:]}" if self.pay_to else ""
