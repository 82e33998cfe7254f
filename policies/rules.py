"""The money-aware authorization rules: plain data in, a decision out. No database.

The rules run in the documented order (docs/api.md); the first that fails names the
decline. Amounts are integer cents of the policy's cap currency, already converted
(rounded up) by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

# Reason codes, in rule order.
CARD_NOT_FOUND = "card_not_found"
CARD_CLOSED = "card_closed"
CARD_EXPIRED = "card_expired"
CARD_FROZEN = "card_frozen"
AGENT_SUSPENDED = "agent_suspended"
MCC_NOT_ALLOWED = "mcc_not_allowed"
MERCHANT_NOT_ALLOWED = "merchant_not_allowed"
CURRENCY_NOT_SUPPORTED = "currency_not_supported"
PRINCIPAL_UNVERIFIED = "principal_unverified"
PER_AUTHORIZATION_CAP_EXCEEDED = "per_authorization_cap_exceeded"
VELOCITY_EXCEEDED = "velocity_exceeded"
CARD_CAP_EXCEEDED = "card_cap_exceeded"
DAILY_CAP_EXCEEDED = "daily_cap_exceeded"
MONTHLY_CAP_EXCEEDED = "monthly_cap_exceeded"
TRACE_CAP_EXCEEDED = "trace_cap_exceeded"

# x402 payments' own (the rest are shared with cards).
WALLET_FROZEN = "wallet_frozen"
X402_NOT_ALLOWED = "x402_not_allowed"
X402_PAYEE_NOT_ALLOWED = "x402_payee_not_allowed"
X402_PER_CALL_CAP_EXCEEDED = "x402_per_call_cap_exceeded"

RULE_ORDER = (
    CARD_NOT_FOUND,
    CARD_CLOSED,
    CARD_EXPIRED,
    CARD_FROZEN,
    AGENT_SUSPENDED,
    MCC_NOT_ALLOWED,
    MERCHANT_NOT_ALLOWED,
    CURRENCY_NOT_SUPPORTED,
    PRINCIPAL_UNVERIFIED,
    PER_AUTHORIZATION_CAP_EXCEEDED,
    VELOCITY_EXCEEDED,
    CARD_CAP_EXCEEDED,
    DAILY_CAP_EXCEEDED,
    MONTHLY_CAP_EXCEEDED,
    TRACE_CAP_EXCEEDED,
)
# An x402 payment's rules, in the card's order: who may pay, whom (the payee is its
# merchant lock), the per-call cap (its per-authorization cap), then the same caps.
X402_RULE_ORDER = (
    AGENT_SUSPENDED,
    WALLET_FROZEN,
    X402_NOT_ALLOWED,
    X402_PAYEE_NOT_ALLOWED,
    CURRENCY_NOT_SUPPORTED,
    X402_PER_CALL_CAP_EXCEEDED,
    CARD_CAP_EXCEEDED,  # the vendor's monthly cap, when the payee is a known vendor's
    DAILY_CAP_EXCEEDED,
    MONTHLY_CAP_EXCEEDED,
    TRACE_CAP_EXCEEDED,
)

# Cap scopes named in declines (and in approval requests).
SCOPE_PER_AUTHORIZATION = "per_authorization"
SCOPE_VELOCITY = "velocity"
SCOPE_CARD = "card"
SCOPE_VENDOR = "vendor"
SCOPE_DAILY = "daily"
SCOPE_MONTHLY = "monthly"
SCOPE_TRACE = "trace"
SCOPE_PER_CALL = "x402_per_call"
SCOPE_UNVERIFIED = "unverified_principal"


# The merchant locks a merchant_not_allowed decline names, checked in this order.
LOCK_CARD_MERCHANT_IDS = "card_merchant_ids"  # the card's own allowed merchant ids
LOCK_VENDOR_MERCHANT_IDS = "vendor_merchant_ids"  # the vendor's verified merchant ids
LOCK_LEARNED_MERCHANT_ID = "learned_merchant_id"  # the merchant of the card's first charge
LOCK_DESCRIPTOR = "descriptor"  # the vendor's statement descriptors
MERCHANT_LOCKS = (
    LOCK_CARD_MERCHANT_IDS,
    LOCK_VENDOR_MERCHANT_IDS,
    LOCK_LEARNED_MERCHANT_ID,
    LOCK_DESCRIPTOR,
)


@dataclass(frozen=True)
class MerchantLock:
    """The second lock, after the MCCs: who the card's vendor is on the card network."""

    descriptors: tuple[str, ...] = ()  # normalised (descriptor_normalise)
    network_ids: tuple[str, ...] = ()  # verified merchant network ids
    descriptor_lock: bool = True
    merchant_id_lock: bool = True


@dataclass(frozen=True)
class CardFacts:
    status: str  # active / frozen / closed
    expires_at: datetime | None
    exp_year: int
    exp_month: int
    allowed_mccs: tuple[str, ...]
    allowed_merchant_ids: tuple[str, ...] = ()
    learned_merchant_id: str = ""
    merchant_lock: MerchantLock = field(default_factory=MerchantLock)


@dataclass(frozen=True)
class ChargeFacts:
    mcc: str
    merchant_network_id: str
    # The charge in cap-currency cents, or None when no FX rate converts it.
    cap_cents: int | None
    merchant_name: str = ""


@dataclass(frozen=True)
class Limit:
    """A cap (cents, None when unset) and what is already spent against it."""

    cap_cents: int | None
    spent_cents: int
    bump_cents: int = 0

    @property
    def effective_cap(self) -> int | None:
        return None if self.cap_cents is None else self.cap_cents + self.bump_cents

    @property
    def headroom(self) -> int | None:
        cap = self.effective_cap
        return None if cap is None else max(cap - max(self.spent_cents, 0), 0)

    def admits(self, cents: int) -> bool:
        headroom = self.headroom
        return headroom is None or cents <= headroom


@dataclass(frozen=True)
class Limits:
    # The policy's limit on one charge while the agent's principal has not verified
    # their email; None once verified (or when the policy sets none).
    unverified_charge_cents: int | None = None
    per_authorization_cents: int | None = None
    velocity_per_hour: int | None = None
    holds_last_hour: int = 0
    card: Limit = field(default_factory=lambda: Limit(None, 0))
    vendor: Limit = field(default_factory=lambda: Limit(None, 0))
    daily: Limit = field(default_factory=lambda: Limit(None, 0))
    monthly: Limit = field(default_factory=lambda: Limit(None, 0))
    trace: Limit = field(default_factory=lambda: Limit(None, 0))


@dataclass(frozen=True)
class RuleDecision:
    approved: bool
    reason: str = ""
    # For cap declines: which cap, its (effective) limit and the headroom left, in cents.
    scope: str = ""
    limit_cents: int | None = None
    spent_cents: int | None = None
    remaining_cents: int | None = None
    merchant_lock: str = ""  # for merchant_not_allowed: which lock (MERCHANT_LOCKS)

    @property
    def is_cap_decline(self) -> bool:
        return self.scope in (SCOPE_CARD, SCOPE_VENDOR, SCOPE_DAILY, SCOPE_MONTHLY, SCOPE_TRACE)


APPROVED = RuleDecision(approved=True)


def cap_key(scope: str, *, card_id: object = "", vendor_slug: str = "", trace_id: str = "") -> str:
    """The key one cap is known by: approval requests, bumps and warnings share it
    ("daily", "monthly", "card:<id>", "vendor:<slug>", "trace:<id>")."""
    if scope == SCOPE_CARD:
        return f"card:{card_id}"
    if scope == SCOPE_VENDOR:
        return f"vendor:{vendor_slug}"
    if scope == SCOPE_TRACE:
        return f"trace:{trace_id}"
    return scope


def card_is_expired(card: CardFacts, now: datetime) -> bool:
    if card.expires_at is not None and now >= card.expires_at:
        return True
    return (now.year, now.month) > (card.exp_year, card.exp_month)


def _one_charge_decline(reason: str, scope: str, limit_cents: int) -> RuleDecision:
    """A limit on one charge (not on spend over a window): all of it is the headroom."""
    return RuleDecision(
        approved=False,
        reason=reason,
        scope=scope,
        limit_cents=limit_cents,
        spent_cents=0,
        remaining_cents=limit_cents,
    )


def _cap_decline(reason: str, scope: str, limit: Limit) -> RuleDecision:
    return RuleDecision(
        approved=False,
        reason=reason,
        scope=scope,
        limit_cents=limit.effective_cap,
        spent_cents=limit.spent_cents,
        remaining_cents=limit.headroom,
    )


def decide(
    *,
    card: CardFacts | None,
    agent_status: str,
    charge: ChargeFacts,
    limits: Limits,
    now: datetime,
) -> RuleDecision:
    """Apply the rules in order; the first that fails is the decline."""
    if card is None:
        return RuleDecision(approved=False, reason=CARD_NOT_FOUND)
    if card.status == "closed":
        return RuleDecision(approved=False, reason=CARD_CLOSED)
    if card_is_expired(card, now):
        return RuleDecision(approved=False, reason=CARD_EXPIRED)
    if card.status == "frozen":
        return RuleDecision(approved=False, reason=CARD_FROZEN)
    if agent_status != "active":
        return RuleDecision(approved=False, reason=AGENT_SUSPENDED)
    if charge.mcc not in card.allowed_mccs:
        return RuleDecision(approved=False, reason=MCC_NOT_ALLOWED)
    if lock := merchant_lock_refusing(card, charge):
        return RuleDecision(approved=False, reason=MERCHANT_NOT_ALLOWED, merchant_lock=lock)
    if charge.cap_cents is None:
        return RuleDecision(approved=False, reason=CURRENCY_NOT_SUPPORTED)
    cents = charge.cap_cents
    unverified = limits.unverified_charge_cents
    if unverified is not None and cents > unverified:
        return _one_charge_decline(PRINCIPAL_UNVERIFIED, SCOPE_UNVERIFIED, unverified)
    per_auth = limits.per_authorization_cents
    if per_auth is not None and cents > per_auth:
        return _one_charge_decline(
            PER_AUTHORIZATION_CAP_EXCEEDED, SCOPE_PER_AUTHORIZATION, per_auth
        )
    velocity = limits.velocity_per_hour
    if velocity is not None and limits.holds_last_hour >= velocity:
        return RuleDecision(
            approved=False,
            reason=VELOCITY_EXCEEDED,
            scope=SCOPE_VELOCITY,
            limit_cents=None,
            spent_cents=None,
            remaining_cents=None,
        )
    if not limits.card.admits(cents):
        return _cap_decline(CARD_CAP_EXCEEDED, SCOPE_CARD, limits.card)
    return _spend_caps(limits, cents)


def _spend_caps(limits: Limits, cents: int) -> RuleDecision:
    """The caps cards and x402 share, in order: the vendor's month, the rolling 24
    hours, the month, the trace."""
    if not limits.vendor.admits(cents):
        return _cap_decline(CARD_CAP_EXCEEDED, SCOPE_VENDOR, limits.vendor)
    if not limits.daily.admits(cents):
        return _cap_decline(DAILY_CAP_EXCEEDED, SCOPE_DAILY, limits.daily)
    if not limits.monthly.admits(cents):
        return _cap_decline(MONTHLY_CAP_EXCEEDED, SCOPE_MONTHLY, limits.monthly)
    if not limits.trace.admits(cents):
        return _cap_decline(TRACE_CAP_EXCEEDED, SCOPE_TRACE, limits.trace)
    return APPROVED


@dataclass(frozen=True)
class X402Facts:
    """What the rules need about one x402 payment and the agent paying it."""

    agent_status: str
    wallet_status: str
    x402_allowed: bool
    per_call_cap_cents: int | None
    payees: tuple[str, ...]  # the policy's allowlist (lower case); empty: any payee
    pay_to: str
    cap_cents: int | None  # the payment in cap-currency cents; None: no FX rate


def decide_x402(*, payment: X402Facts, limits: Limits) -> RuleDecision:
    """Apply the x402 rules in order (X402_RULE_ORDER); the first that fails declines."""
    if payment.agent_status != "active":
        return RuleDecision(approved=False, reason=AGENT_SUSPENDED)
    if payment.wallet_status != "active":
        return RuleDecision(approved=False, reason=WALLET_FROZEN)
    if not payment.x402_allowed or payment.per_call_cap_cents is None:
        return RuleDecision(approved=False, reason=X402_NOT_ALLOWED)
    if payment.payees and payment.pay_to.lower() not in payment.payees:
        return RuleDecision(approved=False, reason=X402_PAYEE_NOT_ALLOWED)
    if payment.cap_cents is None:
        return RuleDecision(approved=False, reason=CURRENCY_NOT_SUPPORTED)
    cents = payment.cap_cents
    if cents > payment.per_call_cap_cents:
        return _one_charge_decline(
            X402_PER_CALL_CAP_EXCEEDED, SCOPE_PER_CALL, payment.per_call_cap_cents
        )
    return _spend_caps(limits, cents)


def decide_card_request(*, ceiling_cents: int, limits: Limits) -> RuleDecision:
    """Whether a single-use card with this ceiling fits the agent's limits now, as one
    charge of the ceiling would: the limits on one charge (the unverified principal's,
    the per-authorization cap), then room in the caps charges share (the vendor's month,
    the rolling 24 hours, the month, the trace). A cap decline opens an approval
    request, as a charge's would."""
    unverified = limits.unverified_charge_cents
    if unverified is not None and ceiling_cents > unverified:
        return _one_charge_decline(PRINCIPAL_UNVERIFIED, SCOPE_UNVERIFIED, unverified)
    per_auth = limits.per_authorization_cents
    if per_auth is not None and ceiling_cents > per_auth:
        return _one_charge_decline(
            PER_AUTHORIZATION_CAP_EXCEEDED, SCOPE_PER_AUTHORIZATION, per_auth
        )
    return _spend_caps(limits, ceiling_cents)


def merchant_lock_refusing(card: CardFacts, charge: ChargeFacts) -> str:
    """The first merchant lock the charge fails, or "" (MCCs are checked before). As
    issuers do it: the card's own merchant ids; the vendor's verified merchant ids, or,
    with none verified, the merchant id of the card's first approved charge; then the
    merchant's name against the vendor's statement descriptors."""
    merchant_id = charge.merchant_network_id
    vendor = card.merchant_lock
    if card.allowed_merchant_ids and merchant_id not in card.allowed_merchant_ids:
        return LOCK_CARD_MERCHANT_IDS
    if vendor.merchant_id_lock:
        if vendor.network_ids and merchant_id not in vendor.network_ids:
            return LOCK_VENDOR_MERCHANT_IDS
        if not vendor.network_ids and card.learned_merchant_id not in ("", merchant_id):
            return LOCK_LEARNED_MERCHANT_ID
    if (
        vendor.descriptor_lock
        and vendor.descriptors
        and not descriptor_matches(charge.merchant_name, vendor.descriptors)
    ):
        return LOCK_DESCRIPTOR
    return ""


def merchant_id_to_learn(card: CardFacts, charge: ChargeFacts) -> str:
    """The merchant id an approved charge locks its card to, or "" (nothing to learn)."""
    vendor = card.merchant_lock
    if vendor.merchant_id_lock and not vendor.network_ids and not card.learned_merchant_id:
        return charge.merchant_network_id
    return ""


# Payment processors that put their own name before the merchant's: "SQ *JOES PIZZA".
_PROCESSOR_PREFIX = re.compile(
    r"^(?:SQ|SP|TST|PAYPAL|PP|FS|2CO|PADDLE(?:\.NET)?)\s*\*\s*", re.IGNORECASE
)
_DROPPED = re.compile(r"['\u2019.]")  # JOE'S -> JOES, CLAUDE.AI -> CLAUDEAI
_SEPARATORS = re.compile(r"[^0-9A-Z]+")
# A name shorter than this never matches by being a descriptor's prefix (networks cut
# names at 22-25 characters, so "AMAZON WEB SERVI" is AWS; "AMAZON" is not).
_MIN_TRUNCATED = 8


def descriptor_normalise(text: str) -> str:
    """Upper case, without a processor's prefix or punctuation, words single-spaced:
    "sq *Joe's  Pizza" and "JOES PIZZA" are both "JOES PIZZA"."""
    text = _DROPPED.sub("", _PROCESSOR_PREFIX.sub("", text.strip()).upper())
    return _SEPARATORS.sub(" ", text).strip()


def descriptor_matches(merchant_name: str, descriptors: tuple[str, ...]) -> bool:
    """Whether the merchant name is one of the (normalised) descriptors: the descriptor
    whole, then maybe more words (a city, a reference), or the descriptor cut short.
    "OPENAI SAN FRANCISCO" is OPENAI; "OPENAIX" is not."""
    name = descriptor_normalise(merchant_name)
    if not name:
        return False
    return any(
        name == descriptor
        or name.startswith(descriptor + " ")
        or (len(name) >= _MIN_TRUNCATED and descriptor.startswith(name))
        for descriptor in descriptors
        if descriptor
    )


def crossed_thresholds(limit: Limit, added_cents: int, thresholds: list[int]) -> list[int]:
    """The warning thresholds (percent of the cap) that this charge steps over."""
    cap = limit.effective_cap
    if not cap or added_cents <= 0:
        return []
    before = limit.spent_cents * 100
    after = (limit.spent_cents + added_cents) * 100
    return [t for t in sorted(thresholds) if before < t * cap <= after]
