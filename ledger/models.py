from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from djmoney.models.fields import MoneyField

from agentwallet.lib.money import from_cents
from agentwallet.lib.timewindows import is_valid_time_zone
from policies.rules import RULE_ORDER


class Decision(models.TextChoices):
    APPROVED = "approved", "Approved"
    DECLINED = "declined", "Declined"


# The rules' reason codes in their order (policies/rules.py), plus failing closed.
SYSTEM_UNAVAILABLE = "system_unavailable"
# Declined by the issuer on its own (its spending controls, its fraud checks, a webhook
# answer that came too late) without asking us: recorded so every attempt is kept.
ISSUER_DECLINED = "issuer_declined"
DECLINE_REASONS = [
    (code, code.replace("_", " ")) for code in (*RULE_ORDER, SYSTEM_UNAVAILABLE, ISSUER_DECLINED)
]


class HoldState(models.TextChoices):
    OPEN = "open", "Open"  # approved, some of the hold still outstanding
    CLOSED = "closed", "Closed"  # fully captured and/or reversed
    EXPIRED = "expired", "Expired"  # released by the expiry task
    NONE = "none", "None"  # declined: nothing was held


class Authorization(models.Model):
    """One request from the network to approve a card charge, decided once.

    Declines are kept too, so an audit shows every attempt.
    """

    network_id = models.CharField(max_length=100, unique=True)
    # Few indexes on purpose: every one is written on each decision. Lookups go through
    # network_id, (agent, decided_at) and the open-holds index below.
    card = models.ForeignKey(
        "cards.Card",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="authorizations",
        db_index=False,
    )
    agent = models.ForeignKey(
        "wallets.Agent",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="authorizations",
        db_index=False,
    )
    vendor = models.ForeignKey(
        "policies.Vendor",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    # The card id as the network sent it (kept when no such card exists).
    requested_card_id = models.CharField(max_length=64)
    amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    # In the policy's cap currency, rounded up; null when no FX rate existed.
    cap_amount = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    fx_rate = models.DecimalField(max_digits=18, decimal_places=8, null=True, blank=True)
    fx_rate_date = models.DateField(null=True, blank=True)
    merchant_name = models.CharField(max_length=200, blank=True)
    merchant_mcc = models.CharField(max_length=4)
    merchant_network_id = models.CharField(max_length=64, blank=True)
    merchant_country = models.CharField(max_length=2, blank=True)
    trace_id = models.CharField(max_length=128, blank=True)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.CharField(max_length=40, choices=DECLINE_REASONS, blank=True)
    # What stopped it, for an agent that must stop instead of retrying.
    cap_scope = models.CharField(max_length=20, blank=True)
    cap_limit = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    cap_remaining = MoneyField(
        max_digits=14, decimal_places=2, null=True, blank=True, default_currency="USD"
    )
    # For merchant_not_allowed: which lock stopped it (policies.rules.MERCHANT_LOCKS).
    merchant_lock = models.CharField(max_length=20, blank=True, default="")
    approval_request = models.ForeignKey(
        "approvals.ApprovalRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="declined_authorizations",
        db_index=False,
    )
    hold_state = models.CharField(max_length=8, choices=HoldState.choices)
    # Cap-currency cents of the hold still outstanding (0 once resolved).
    held_cents = models.BigIntegerField(default=0)
    # Merchant-currency cents captured so far, and refunded so far (linked refunds).
    captured_cents = models.BigIntegerField(default=0)
    reversed_cents = models.BigIntegerField(default=0)
    refunded_cents = models.BigIntegerField(default=0)
    decided_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the request as the network sent it (canonical JSON): the same id again
    # with another payload is a conflict, not a replay. Empty for requests from code.
    request_sha256 = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-decided_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decision__in=Decision.values),
                name="ledger_authorization_decision_valid",
            ),
            models.CheckConstraint(
                condition=Q(decision="approved", reason="")
                | (Q(decision="declined") & ~Q(reason="")),
                name="ledger_authorization_declines_have_reason",
            ),
            models.CheckConstraint(
                condition=Q(hold_state__in=HoldState.values),
                name="ledger_authorization_hold_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(decision="approved") | Q(hold_state="none", held_cents=0),
                name="ledger_authorization_declines_hold_nothing",
            ),
            models.CheckConstraint(
                condition=Q(held_cents__gte=0)
                & Q(captured_cents__gte=0)
                & Q(reversed_cents__gte=0)
                & Q(refunded_cents__gte=0),
                name="ledger_authorization_cents_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=Decimal("0")), name="ledger_authorization_amount_positive"
            ),
            models.CheckConstraint(
                condition=~Q(hold_state="open") | Q(resolved_at__isnull=True),
                name="ledger_authorization_open_holds_unresolved",
            ),
        ]
        indexes = [
            models.Index(
                fields=["hold_state", "decided_at"],
                name="ledger_auth_open_holds",
                condition=Q(hold_state="open"),
            ),
            models.Index(fields=["agent", "decided_at"], name="ledger_auth_agent_time"),
            # Partial, so approvals cost no write: the charge behind each approval request
            # (the approvals queue) and the latest declines (the dashboard).
            models.Index(
                fields=["approval_request"],
                name="ledger_auth_approval",
                condition=Q(approval_request__isnull=False),
            ),
            models.Index(
                fields=["decided_at"], name="ledger_auth_declines", condition=Q(decision="declined")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.network_id} {self.decision} {self.amount}"


class EntryKind(models.TextChoices):
    HOLD = "hold", "Hold"
    CAPTURE = "capture", "Capture"
    RELEASE = "release", "Release"
    REFUND = "refund", "Refund"
    X402_PAYMENT = "x402_payment", "x402 payment"


class Rail(models.TextChoices):
    CARD = "card", "Card"
    USDC = "usdc", "USDC"


class EntryFlag(models.TextChoices):
    """Money that moved without our approval, or not as approved."""

    NONE = "", "None"
    FORCE_POST = "force_post", "Forced capture (not approved by us)"
    OVER_CAPTURE = "over_capture", "Captured more than held"
    LATE_CAPTURE = "late_capture", "Captured after the hold resolved"
    UNLINKED_REFUND = "unlinked_refund", "Refund without a matching capture"


# Kinds that add to spend; the others take it away.
SPEND_KINDS = (EntryKind.HOLD, EntryKind.CAPTURE, EntryKind.X402_PAYMENT)
CREDIT_KINDS = (EntryKind.RELEASE, EntryKind.REFUND)


class LedgerEntry(models.Model):
    """An immutable movement of money, attributed to an agent, vendor and trace.

    `cap_cents` is signed, in cents of the cap currency: spend kinds are positive,
    release and refund negative (or zero), so spend over any window is one SUM of
    integers, exact on every database. A capture releases the hold it clears with its
    own release entry, so nothing is counted twice. On PostgreSQL and SQLite a trigger
    refuses UPDATE and DELETE on this table.
    """

    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    rail = models.CharField(max_length=8, choices=Rail.choices, default=Rail.CARD)
    flag = models.CharField(max_length=20, choices=EntryFlag.choices, blank=True, default="")
    # The agent and card are reached through the (agent, effective_at) and
    # (card, created_at) indexes below; their own FK indexes would only cost writes.
    agent = models.ForeignKey(
        "wallets.Agent", on_delete=models.PROTECT, related_name="ledger_entries", db_index=False
    )
    card = models.ForeignKey(
        "cards.Card",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
        db_index=False,
    )
    vendor = models.ForeignKey(
        "policies.Vendor",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_entries",
    )
    authorization = models.ForeignKey(
        Authorization, on_delete=models.PROTECT, null=True, blank=True, related_name="entries"
    )
    # The network's id for this capture/refund/reversal, when it sends one (idempotency).
    network_txn_id = models.CharField(max_length=100, null=True, blank=True, unique=True)
    trace_id = models.CharField(max_length=128, blank=True)
    # What the merchant charged, in its currency (always positive).
    amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    # The same movement in the policy's cap currency, signed (see above).
    cap_amount = MoneyField(max_digits=14, decimal_places=2, default_currency="USD")
    cap_cents = models.BigIntegerField()
    # cap currency units per merchant currency unit; 1 when they are the same.
    fx_rate = models.DecimalField(max_digits=18, decimal_places=8, default=Decimal("1"))
    memo = models.CharField(max_length=200, blank=True)
    # When it was posted, and when it counts as spent: the authorization's time for
    # everything that settles a hold (so a late capture lands in the window of the
    # purchase), the posting time for money that came without one.
    created_at = models.DateTimeField(db_index=True)
    effective_at = models.DateTimeField()

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
                condition=Q(flag__in=EntryFlag.values), name="ledger_ledgerentry_flag_valid"
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=Decimal("0")),
                name="ledger_ledgerentry_amount_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=SPEND_KINDS, cap_cents__gte=0, cap_amount__gte=Decimal("0"))
                | Q(kind__in=CREDIT_KINDS, cap_cents__lte=0, cap_amount__lte=Decimal("0")),
                name="ledger_ledgerentry_sign_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(fx_rate__gt=Decimal("0")), name="ledger_ledgerentry_fx_rate_positive"
            ),
        ]
        indexes = [
            models.Index(fields=["agent", "effective_at"], name="ledger_entry_agent_time"),
            models.Index(fields=["card", "created_at"], name="ledger_entry_card_time"),
            # A trace's entries newest first by id (the ledger and trace pages' keyset).
            models.Index(fields=["trace_id", "id"], name="ledger_entry_trace_id"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.cap_amount} {self.agent_id}"


class CounterGrain(models.TextChoices):
    MINUTE = "min", "Minute"
    HOUR = "hour", "Hour"
    MONTH = "month", "Calendar month (policy time zone)"
    TOTAL = "total", "Lifetime"


class SpendCounter(models.Model):
    """Running spend of one scope in one time bucket, kept with the ledger entry.

    Scopes: `agent:<id>` (minute, hour and month buckets), `card:<id>` and
    `vendor:<agent>:<vendor>` (month), `trace:<currency>:<trace>` (lifetime). A
    decision reads a bounded number of these instead of summing a growing window.
    Derived data: `rebuild_spend_counters` recomputes them from the ledger.
    """

    scope = models.CharField(max_length=200)
    grain = models.CharField(max_length=5, choices=CounterGrain.choices)
    bucket_start = models.DateTimeField()
    # Signed cents of the cap currency, and the number of holds (for velocity).
    cents = models.BigIntegerField(default=0)
    holds = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "grain", "bucket_start"], name="ledger_spendcounter_one_per_bucket"
            ),
            models.CheckConstraint(
                condition=Q(grain__in=CounterGrain.values), name="ledger_spendcounter_grain_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.grain} {self.bucket_start:%Y-%m-%d %H:%M}: {self.cents}"


class TraceBudget(models.Model):
    """One row per trace: the lock that serializes decisions on a shared trace budget."""

    trace_id = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.trace_id


class FxSnapshot(models.Model):
    """A load of exchange rates into djmoney's exchange tables: where from, which day."""

    backend = models.CharField(max_length=50)
    base_currency = models.CharField(max_length=3)
    rates_date = models.DateField()
    source = models.CharField(max_length=500)
    currencies = models.PositiveIntegerField()
    loaded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-loaded_at", "-id"]
        get_latest_by = "loaded_at"

    def __str__(self) -> str:
        return f"{self.backend} {self.rates_date} ({self.currencies} currencies)"


class MonthCounterZone(models.Model):
    """An agent whose month counters are still cut in another time zone than its
    policy's, because the policy's zone changed. Its decisions and budget keep counting
    months in `time_zone`, exactly, until the recut task has cut its month counters
    again from the ledger and deleted this row (ledger.services.counters)."""

    agent = models.OneToOneField(
        "wallets.Agent", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    time_zone = models.CharField(max_length=64)
    since = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.agent_id}: months in {self.time_zone} since {self.since:%Y-%m-%d %H:%M}"


class NetworkEventKind(models.TextChoices):
    CAPTURE = "capture", "Capture"
    REVERSAL = "reversal", "Reversal"
    REFUND = "refund", "Refund"


class NetworkEvent(models.Model):
    """A capture, reversal or refund the network sent, kept by the network's own event id
    so that it is applied at most once: the same id again with the same kind, target and
    payload gets the first answer; anything else with that id is a conflict. (An
    authorization's id is its row's `network_id`; the two id spaces are checked against
    each other.) The answer is rebuilt from the entries it wrote, which are immutable,
    and the hold as the event left it."""

    event_id = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=NetworkEventKind.choices)
    # The authorization's network id the event was sent for ("" for an unlinked refund).
    target = models.CharField(max_length=100, blank=True)
    payload_sha256 = models.CharField(max_length=64)
    agent = models.ForeignKey(
        "wallets.Agent", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    authorization = models.ForeignKey(
        Authorization, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    hold_state = models.CharField(max_length=8, choices=HoldState.choices, blank=True)
    held_cents = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            # The captures of an authorization we had not seen yet (issuers' events arrive
            # in any order).
            models.Index(fields=["target"], name="ledger_netevent_target"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=NetworkEventKind.values),
                name="ledger_networkevent_kind_valid",
            ),
            models.CheckConstraint(
                condition=~Q(event_id=""), name="ledger_networkevent_event_id_not_empty"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.event_id}"


class SpendRollupMark(models.Model):
    """How far the spend rollups have read the ledger: they hold every entry with an id
    up to `last_entry_id` and none after it. One row; the fold locks it."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_entry_id = models.BigIntegerField(default=0)
    advanced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="ledger_spendrollupmark_one_row"),
            models.CheckConstraint(
                condition=Q(last_entry_id__gte=0), name="ledger_spendrollupmark_id_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"spend rollups through entry {self.last_entry_id}"


class SpendRollup(models.Model):
    """What every spend rollup row holds: a team's (principal's) net cents and number of
    entries in one cap currency, for its key. Derived data (ledger.services.rollups)."""

    principal = models.ForeignKey(
        "wallets.Principal", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    currency = models.CharField(max_length=3)
    cents = models.BigIntegerField()
    entries = models.PositiveIntegerField()

    class Meta:
        abstract = True


def _rollup_vendor() -> models.ForeignKey:
    return models.ForeignKey(
        "policies.Vendor",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )


class DaySpend(SpendRollup):
    """Net spend of one team (principal) with one vendor on one UTC day (by the entries'
    `effective_at`), in one cap currency: the ledger's entries up to the rollup mark.

    Derived data for the portal's charts and totals, kept off the decision path
    (ledger.services.rollups): a read adds the ledger's entries after the mark. Keyed by
    the agent's team, which therefore never changes once an agent exists."""

    day = models.DateField()
    vendor = _rollup_vendor()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["day", "principal", "vendor", "currency"],
                condition=Q(vendor__isnull=False),
                name="ledger_dayspend_one_per_vendor",
            ),
            models.UniqueConstraint(
                fields=["day", "principal", "currency"],
                condition=Q(vendor__isnull=True),
                name="ledger_dayspend_one_without_vendor",
            ),
        ]
        # The unique indexes are partial (a vendor or none), so no read by day uses them.
        indexes = [models.Index(fields=["day"], name="ledger_dayspend_day")]

    def __str__(self) -> str:
        return f"{self.day} {self.principal_id} {self.vendor_id}: {self.cents} {self.currency}"


class TraceMonthSpend(SpendRollup):
    """Net spend of one team (principal) on one trace in one UTC calendar month (by the
    entries' `effective_at`), in one cap currency: the ledger's entries with a trace up
    to the rollup mark. Derived data, as DaySpend."""

    month = models.DateField()  # the month's first day
    trace_id = models.CharField(max_length=128)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["month", "trace_id", "principal", "currency"],
                name="ledger_tracemonthspend_one_per_key",
            ),
            models.CheckConstraint(
                condition=~Q(trace_id=""), name="ledger_tracemonthspend_has_trace"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.trace_id} {self.principal_id}: {self.cents}"


class TraceAgentMonthSpend(SpendRollup):
    """What one agent spent with one vendor on one trace in one UTC calendar month (by
    `effective_at`), in one cap currency, and its last entry: the ledger's entries with a
    trace up to the rollup mark. Who spent on a trace, read for a page of traces without
    grouping their entries; derived data, as DaySpend (the team is the agent's, kept here
    so that a lead's read needs no join)."""

    month = models.DateField()  # the month's first day
    trace_id = models.CharField(max_length=128)
    agent = models.ForeignKey(
        "wallets.Agent", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    vendor = _rollup_vendor()
    last_entry_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["month", "trace_id", "agent", "vendor", "currency"],
                condition=Q(vendor__isnull=False),
                name="ledger_traceagentmonthspend_one_per_vendor",
            ),
            models.UniqueConstraint(
                fields=["month", "trace_id", "agent", "currency"],
                condition=Q(vendor__isnull=True),
                name="ledger_traceagentmonthspend_one_without_vendor",
            ),
            models.CheckConstraint(
                condition=~Q(trace_id=""), name="ledger_traceagentmonthspend_has_trace"
            ),
        ]
        # A page of traces' spenders, read by month and trace (the unique indexes are partial).
        indexes = [models.Index(fields=["month", "trace_id"], name="ledger_tams_month_trace")]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} {self.trace_id} {self.agent_id} {self.vendor_id}: {self.cents}"


class RunawaySubject(models.TextChoices):
    AGENT = "agent", "Agent"
    TRACE = "trace", "Trace"


class Runaway(models.Model):
    """An agent's or a trace's last hour of spend far above its own usual busy hour
    (ledger.services.runaway), flagged once per subject and hour by the sweep."""

    subject = models.CharField(max_length=5, choices=RunawaySubject.choices)
    # `agent:<id>` or `trace:<currency>:<trace>`: with `hour_start`, one flag per hour.
    subject_key = models.CharField(max_length=200)
    trace_id = models.CharField(max_length=128, blank=True)
    currency = models.CharField(max_length=3)
    hour_start = models.DateTimeField()
    # Cents of the cap currency: the last 60 minutes, and the median busy hour (the
    # hours it spent in) of the 7 days before them; 0 when it never spent before.
    rate_cents = models.BigIntegerField()
    baseline_cents = models.BigIntegerField()
    # The agents and cards that spent in the last hour, and what the sweep did.
    agents = models.ManyToManyField("wallets.Agent", related_name="runaways")
    cards = models.JSONField(default=list)
    frozen = models.JSONField(default=list)  # the agents' names whose cards it froze
    detected_at = models.DateTimeField()

    class Meta:
        ordering = ["-detected_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject_key", "hour_start"], name="ledger_runaway_once_per_hour"
            ),
            models.CheckConstraint(
                condition=Q(subject__in=RunawaySubject.values), name="ledger_runaway_subject_valid"
            ),
            models.CheckConstraint(
                condition=Q(rate_cents__gt=0) & Q(baseline_cents__gte=0),
                name="ledger_runaway_figures_valid",
            ),
            models.CheckConstraint(
                condition=Q(subject=RunawaySubject.AGENT) | ~Q(trace_id=""),
                name="ledger_runaway_trace_has_id",
            ),
        ]
        indexes = [models.Index(fields=["detected_at"], name="ledger_runaway_detected")]

    def __str__(self) -> str:
        return f"{self.subject_key} {self.hour_start:%Y-%m-%d %H:00}: {self.rate_cents}"

    @property
    def rate(self) -> Decimal:
        return from_cents(self.rate_cents)

    @property
    def baseline(self) -> Decimal:
        return from_cents(self.baseline_cents)


class SprintCalendar(models.Model):
    """The organisation's sprints: `length_days` long, back to back from `first_day`
    (midnight in `time_zone`). One row (ledger.services.reports.sprint_calendar)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    first_day = models.DateField(default=date(2026, 1, 5))  # a Monday
    length_days = models.PositiveSmallIntegerField(default=14)
    time_zone = models.CharField(max_length=64, default="UTC")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="ledger_sprintcalendar_one_row"),
            models.CheckConstraint(
                condition=Q(length_days__gte=1, length_days__lte=92),
                name="ledger_sprintcalendar_length_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.length_days}-day sprints from {self.first_day} ({self.time_zone})"

    def clean(self) -> None:
        if not is_valid_time_zone(self.time_zone):
            raise ValidationError({"time_zone": f"Unknown time zone {self.time_zone!r}."})


class SprintReport(models.Model):
    """One sprint's spend and what happened around it, built from the ledger (again, and
    in place, whenever it is rebuilt): ledger.services.reports."""

    first_day = models.DateField(unique=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    built_at = models.DateTimeField()
    # Money as strings, per cap currency (the report's figures; docs/api.md).
    figures = models.JSONField(default=dict)

    class Meta:
        ordering = ["-first_day"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="ledger_sprintreport_ends_after"
            )
        ]

    def __str__(self) -> str:
        return f"Sprint of {self.first_day}"

    @property
    def last_day(self) -> date:
        """The sprint's last local day (`ends_at` is the midnight after it)."""
        return self.first_day + timedelta(days=(self.ends_at - self.starts_at).days - 1)


class ReconciliationMismatch(models.TextChoices):
    AUTHORIZATION_MISSING_HERE = "authorization_missing_here", "Authorization at the issuer only"
    AUTHORIZATION_MISSING_AT_ISSUER = (
        "authorization_missing_at_issuer",
        "Authorization in our ledger only",
    )
    DECISION_DIFFERS = "decision_differs", "Approved on one side, declined on the other"
    AMOUNT_DIFFERS = "amount_differs", "Authorized amounts differ"
    TRANSACTION_MISSING_HERE = "transaction_missing_here", "Transaction at the issuer only"
    TRANSACTION_MISSING_AT_ISSUER = (
        "transaction_missing_at_issuer",
        "Transaction in our ledger only",
    )
    TRANSACTION_AMOUNT_DIFFERS = "transaction_amount_differs", "Transaction amounts differ"
    CARD_MISSING_HERE = "card_missing_here", "Card at the issuer only"
    CARD_MISSING_AT_ISSUER = "card_missing_at_issuer", "Card here only"
    CARD_STATUS_DIFFERS = "card_status_differs", "Card status differs (our status re-sent)"
    CARD_CONTROLS_DIFFER = "card_controls_differ", "Card controls differ (ours re-sent)"


class IssuerReconciliation(models.Model):
    """One UTC day of the issuer's authorizations and transactions, and its cards as they
    are, held against our ledger (ledger.services.reconciliation): every difference, for
    finance to look into. Run again for the same day, it is replaced."""

    issuer = models.CharField(max_length=20)
    day = models.DateField()
    ran_at = models.DateTimeField()
    authorizations = models.PositiveIntegerField(default=0)  # the issuer's, that day
    transactions = models.PositiveIntegerField(default=0)
    cards = models.PositiveIntegerField(default=0)
    # [{"kind": ReconciliationMismatch, "object_id", "card_id", "detail"}]
    mismatches = models.JSONField(default=list)

    class Meta:
        ordering = ["-day", "issuer"]
        constraints = [
            models.UniqueConstraint(fields=["issuer", "day"], name="ledger_reconciliation_once")
        ]

    def __str__(self) -> str:
        return f"{self.issuer} {self.day}: {len(self.mismatches)} mismatches"
