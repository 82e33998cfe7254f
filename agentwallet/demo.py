"""Four weeks of demo spend up to the last hours, driven through the real services.

Every charge is decided by `authorization_decide` at its time, then captured, reversed
or refunded as a processor would (`ledger.services`); approval requests are answered
through `approvals.services` and lapse through its expiry sweep; a card is frozen
through `cards.services`. So the ledger, counters, declines and approvals are genuine.

The history is generated relative to the time the seed runs and played in time order,
with the sweeps beat runs (uncaptured holds, unanswered requests) every simulated hour.
Deterministic (seeded): the same `now` gives the same demo. Besides routine spend it
holds these scenes:

- PR-4823, claude-code-main's open PR, well under the $20 per-PR cap: README's example;
- a runaway PR (codex-refactor, PR-5174) looping on OpenAI calls into its trace cap,
  and alice denying the request;
- a big PR (claude-code-main, PR-4805) over its cap, and alice approving a $15 bump;
- ci-runner's nightly eval suite hitting its daily cap, and bob approving a $40 bump;
- a CI retry storm hitting ci-runner's velocity limit (30 an hour);
- a dedicated-server order over deploy-bot's daily cap that nobody answers (expired);
- wrong merchants: an Amazon marketplace book on the AWS card (MCC), a pizza on the
  Anthropic card and a Hetzner invoice on the AWS card (merchant lock), a look-alike
  merchant id under OVH's name on deploy-bot's OVH card (the card's merchant lock);
- in the last hours: codex-refactor's newest PR stopped by its cap and deploy-bot
  asking ahead for more monthly room (both pending);
- last, at the real time (a card event cannot be back-dated): bob freezes deploy-bot's
  OVH card and OVH's renewal is declined.
"""

from __future__ import annotations

import heapq
import random
import shlex
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import Count
from django.utils import timezone

from approvals.models import ApprovalRequest, ApprovalScope, DecisionChannel
from approvals.services import (
    approval_deny,
    approval_grant,
    approval_request_ask,
    approvals_expire,
)
from cards.models import Card, CardStatus
from cards.services import card_freeze
from ledger.models import Decision
from ledger.services import (
    AuthorizationRequest,
    authorization_capture,
    authorization_decide,
    authorization_reverse,
    holds_expire,
    refund_record,
)
from policies.models import Vendor
from wallets.actors import Actor
from wallets.models import Agent

DAYS = 28
SWEEP_EVERY = timedelta(hours=1)

# README's example: a charge of this amount on the trace is approved right after seeding.
EXAMPLE_TRACE = "PR-4823"
EXAMPLE_AMOUNT = Decimal("12.50")
# The card each demo agent tries first.
TRY_VENDOR = {
    "claude-code-main": "anthropic",
    "codex-refactor": "openai",
    "ci-runner": "github",
    "deploy-bot": "hetzner",
}

RUNAWAY_TRACE = "PR-5174"
BUMPED_TRACE = "PR-4805"
STOPPED_TRACE = "PR-5212"
DEPLOY_TRACE = "PR-7312"
SCENE_TRACES = {EXAMPLE_TRACE, RUNAWAY_TRACE, BUMPED_TRACE, STOPPED_TRACE, DEPLOY_TRACE}


# --- How charges reach the network ---------------------------------------------------


@dataclass(frozen=True)
class Merchant:
    """A charge's merchant as the network names it."""

    name: str
    network_id: str
    mcc: str
    country: str = "US"


# The statement descriptor each vendor's charges carry (one of its catalogue's).
DESCRIPTORS = {
    "anthropic": "ANTHROPIC",
    "openai": "OPENAI *API",
    "aws": "AMAZON WEB SERVICES",
    "vercel": "VERCEL INC.",
    "github": "GITHUB, INC.",
    "snowflake": "SNOWFLAKE INC",
    "hetzner": "HETZNER ONLINE GMBH",
    "ovh": "OVH SAS",
}
COUNTRIES = {"hetzner": "DE", "ovh": "FR"}
# Vendors without verified merchant ids in the catalogue charge under one id each: their
# cards lock to it on the first approved charge.
UNVERIFIED_NETWORK_IDS = {"ovh": "FR0000000OVH001", "snowflake": "US0000SNOWFLK01"}

# Merchants that are not the card's vendor: an MCC no demo card takes (book stores,
# schools), and allowed MCCs under other merchants' names and ids (the merchant lock).
AMAZON_BOOKS = Merchant("AMZN MKTP US", "US000AMZNMKTP01", "5942")
UDEMY = Merchant("UDEMY", "US0000UDEMY0001", "8299")
JOES_PIZZA = Merchant("JOE'S PIZZA", "US00JOESPIZZA01", "7372")
HETZNER_ELSEWHERE = Merchant("Hetzner Online", "105139245", "4816", "DE")
OVH_LOOKALIKE = Merchant("OVHCLOUD", "FR00000LOOKALIKE", "4816", "FR")


def vendor_merchant(vendor: Vendor) -> Merchant:
    """How the vendor's own charges look: its descriptor, its (first verified) merchant id
    and its first MCC, the card's first lock."""
    name = DESCRIPTORS[vendor.slug]
    if name not in vendor.descriptors:
        raise ValueError(f"{name!r} is not a descriptor of {vendor.slug} in the catalogue")
    network_id = (
        vendor.network_ids[0] if vendor.network_ids else UNVERIFIED_NETWORK_IDS[vendor.slug]
    )
    return Merchant(name, network_id, vendor.mccs[0], COUNTRIES.get(vendor.slug, "US"))


def try_command(*, card: Card, amount: Decimal, currency: str, trace: str) -> str:
    """The sandbox network's command for an approvable charge on the card."""
    merchant = vendor_merchant(card.vendor)
    return shlex.join(
        [
            ".venv/bin/python",
            "manage.py",
            "network",
            "authorize",
            *("--card", str(card.pk), "--amount", str(amount), "--currency", currency),
            *("--merchant", merchant.name, "--mcc", merchant.mcc),
            *("--merchant-id", merchant.network_id, "--country", merchant.country),
            *("--trace", trace),
        ]
    )


# --- What happens ---------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """How the agent's principal answers (in Slack) the request a cap decline opens."""

    after: timedelta
    grant: bool
    amount: Decimal | None = None  # a grant's bump; None: the requested amount
    note: str = ""


@dataclass(frozen=True)
class Charge:
    agent: str
    vendor: str  # the agent's card for this vendor
    amount: Decimal
    currency: str = "USD"
    trace: str = ""
    merchant: Merchant | None = None  # None: the vendor's own
    settle: bool = True  # captured, reversed or refunded later, like a processor would
    answer: Answer | None = None


@dataclass(frozen=True)
class Posting:
    """What the processor sends after an approval: a capture, a reversal or a refund."""

    action: str
    network_id: str
    card_id: str
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class Reply:
    request_id: int
    answer: Answer


@dataclass(frozen=True)
class Ask:
    """An agent asks ahead for more room on one of its caps."""

    agent: str
    scope: str
    amount: Decimal
    reason: str


Event = Charge | Posting | Reply | Ask


@dataclass(frozen=True)
class DemoSummary:
    decided: int
    approved: int
    declines: dict[str, int]
    approvals: dict[str, int]


# --- Routine spend ------------------------------------------------------------------


@dataclass(frozen=True)
class Routine:
    vendor: str
    per_day: tuple[int, int]
    amount: tuple[str, str]
    currency: str = "USD"
    traced: float = 0.0  # the share charged to one of the day's PRs (the rest: unattributed)


ROUTINES: dict[str, list[Routine]] = {
    "claude-code-main": [
        Routine("anthropic", (3, 8), ("0.40", "6.00"), traced=0.8),
        Routine("openai", (1, 4), ("0.20", "4.00"), traced=0.8),
        Routine("aws", (0, 2), ("3.00", "60.00")),
        Routine("vercel", (0, 1), ("5.00", "20.00")),
    ],
    "codex-refactor": [
        Routine("openai", (2, 6), ("0.30", "5.00"), traced=0.8),
        Routine("github", (0, 1), ("4.00", "21.00")),
        Routine("snowflake", (0, 1), ("2.00", "30.00")),
    ],
    "ci-runner": [
        Routine("openai", (4, 10), ("0.05", "0.60"), traced=0.8),
        Routine("github", (0, 2), ("0.50", "4.00")),
    ],
    "deploy-bot": [
        Routine("hetzner", (0, 2), ("4.50", "49.00"), currency="EUR", traced=0.5),
        Routine("ovh", (0, 1), ("3.00", "25.00"), currency="EUR"),
        Routine("github", (0, 1), ("4.00", "12.00")),
    ],
}
# Each agent's PRs: four a day, numbered up from here over the four weeks.
PRS_PER_DAY = 4
FIRST_PR = {"claude-code-main": 4711, "codex-refactor": 5100, "ci-runner": 6100, "deploy-bot": 7200}


def _amount(rng: random.Random, low: str, high: str) -> Decimal:
    cents = rng.randint(int(Decimal(low) * 100), int(Decimal(high) * 100))
    return Decimal(cents) / 100


def _routine(rng: random.Random, now: datetime) -> list[tuple[datetime, Charge]]:
    """Every agent's everyday charges, each day of the four weeks up to ten minutes ago."""
    charges = []
    for agent, routines in ROUTINES.items():
        for day in range(DAYS - 1, -1, -1):
            first = FIRST_PR[agent] + PRS_PER_DAY * (DAYS - 1 - day)
            prs = [f"PR-{first + slot}" for slot in range(PRS_PER_DAY)]
            prs = [pr for pr in prs if pr not in SCENE_TRACES]
            for routine in routines:
                for _ in range(rng.randint(*routine.per_day)):
                    at = now - timedelta(days=day, minutes=rng.randint(10, 24 * 60 - 1))
                    traced = rng.random() < routine.traced
                    charges.append(
                        (
                            at,
                            Charge(
                                agent,
                                routine.vendor,
                                _amount(rng, *routine.amount),
                                routine.currency,
                                trace=rng.choice(prs) if traced else "",
                            ),
                        )
                    )
    return charges


# --- Scenes ---------------------------------------------------------------------------


def _day_at(now: datetime, days_ago: int, zone: str, hour: int, minute: int = 0) -> datetime:
    """A wall-clock time in `zone`, `days_ago` days before `now`."""
    local = (now - timedelta(days=days_ago)).astimezone(ZoneInfo(zone))
    return local.replace(hour=hour, minute=minute, second=0, microsecond=0)


def _series(
    rng: random.Random,
    start: datetime,
    every: timedelta,
    n: int,
    low: str,
    high: str,
    **charge: Any,
) -> list[tuple[datetime, Charge]]:
    return [(start + every * i, Charge(amount=_amount(rng, low, high), **charge)) for i in range(n)]


def _scenes(rng: random.Random, now: datetime) -> list[tuple[datetime, Event]]:
    def hours(h: float) -> datetime:
        return now - timedelta(hours=h)

    claude, codex, ci, deploy = "claude-code-main", "codex-refactor", "ci-runner", "deploy-bot"
    return [
        # README's example PR: $6.22 of its $20 cap spent, the last an hour ago.
        (hours(30), Charge(claude, "anthropic", Decimal("2.85"), trace=EXAMPLE_TRACE)),
        (hours(29), Charge(claude, "openai", Decimal("0.92"), trace=EXAMPLE_TRACE)),
        (hours(5), Charge(claude, "anthropic", Decimal("1.40"), trace=EXAMPLE_TRACE)),
        (hours(1.2), Charge(claude, "anthropic", Decimal("1.05"), trace=EXAMPLE_TRACE)),
        # The runaway PR: a loop of OpenAI calls into the $20 cap; alice denies once it
        # has stopped on its own.
        *_series(
            rng,
            _day_at(now, 9, "UTC", 15),
            timedelta(minutes=4),
            16,
            "2.20",
            "3.40",
            agent=codex,
            vendor="openai",
            trace=RUNAWAY_TRACE,
            answer=Answer(
                timedelta(minutes=50),
                grant=False,
                note="Looping on the same failing test; fix the prompt, then ask again.",
            ),
        ),
        # A big migration PR over its cap: alice approves $15 more.
        *_series(
            rng,
            _day_at(now, 4, "UTC", 10),
            timedelta(minutes=6),
            9,
            "2.60",
            "4.20",
            agent=claude,
            vendor="anthropic",
            trace=BUMPED_TRACE,
            answer=Answer(
                timedelta(minutes=10),
                grant=True,
                amount=Decimal("15.00"),
                note="Schema migration PR; worth finishing.",
            ),
        ),
        # ci-runner's nightly eval suite runs into the $50 daily cap: bob approves $40.
        *_series(
            rng,
            _day_at(now, 12, "America/New_York", 2),
            timedelta(minutes=3),
            60,
            "0.80",
            "1.40",
            agent=ci,
            vendor="openai",
            answer=Answer(
                timedelta(minutes=15),
                grant=True,
                amount=Decimal("40.00"),
                note="The eval suite runs long this week.",
            ),
        ),
        # A CI retry storm: more than 30 calls in an hour (velocity).
        *_series(
            rng,
            _day_at(now, 5, "America/New_York", 14),
            timedelta(seconds=70),
            36,
            "0.05",
            "0.15",
            agent=ci,
            vendor="openai",
        ),
        # A dedicated server ordered on a busy day, over deploy-bot's daily cap of €300;
        # nobody answers and the request lapses.
        (
            _day_at(now, 15, "Europe/Berlin", 9),
            Charge(deploy, "hetzner", Decimal("38.50"), "EUR"),
        ),
        (
            _day_at(now, 15, "Europe/Berlin", 11, 30),
            Charge(deploy, "hetzner", Decimal("24.90"), "EUR"),
        ),
        (
            _day_at(now, 15, "Europe/Berlin", 14),
            Charge(deploy, "hetzner", Decimal("289.00"), "EUR"),
        ),
        # Wrong merchants (never settled): a book on the AWS card, a course on the OpenAI
        # card, a pizza on the Anthropic card, a Hetzner invoice on the AWS card, and, in
        # the last hours, OVH's name from another merchant id than the card locked to.
        (
            _day_at(now, 16, "UTC", 11, 20),
            Charge(claude, "aws", Decimal("34.99"), merchant=AMAZON_BOOKS, settle=False),
        ),
        (
            _day_at(now, 8, "UTC", 16, 5),
            Charge(codex, "openai", Decimal("19.99"), merchant=UDEMY, settle=False),
        ),
        (
            _day_at(now, 7, "UTC", 19, 40),
            Charge(claude, "anthropic", Decimal("23.50"), merchant=JOES_PIZZA, settle=False),
        ),
        (
            _day_at(now, 11, "UTC", 8, 15),
            Charge(
                claude, "aws", Decimal("19.00"), "EUR", merchant=HETZNER_ELSEWHERE, settle=False
            ),
        ),
        (
            hours(3),
            Charge(deploy, "ovh", Decimal("49.99"), "EUR", merchant=OVH_LOOKALIKE, settle=False),
        ),
        # The last hours: codex-refactor's newest PR reaches its cap (left pending) ...
        (hours(6), Charge(codex, "openai", Decimal("4.80"), trace=STOPPED_TRACE)),
        (hours(4), Charge(codex, "openai", Decimal("5.60"), trace=STOPPED_TRACE)),
        (hours(3), Charge(codex, "openai", Decimal("4.90"), trace=STOPPED_TRACE)),
        (hours(2.2), Charge(codex, "openai", Decimal("3.70"), trace=STOPPED_TRACE)),
        (hours(2), Charge(codex, "openai", Decimal("6.00"), trace=STOPPED_TRACE)),
        # ... a deploy goes out, and deploy-bot asks ahead for more room this month.
        (hours(7), Charge(deploy, "hetzner", Decimal("17.80"), "EUR", trace=DEPLOY_TRACE)),
        (hours(6.8), Charge(deploy, "github", Decimal("4.00"), trace=DEPLOY_TRACE)),
        (
            hours(0.8),
            Ask(
                deploy,
                ApprovalScope.MONTHLY,
                Decimal("600.00"),
                "Moving staging to new Hetzner machines this week; both run for a few days.",
            ),
        ),
    ]


# --- Playing it -----------------------------------------------------------------------


@dataclass
class _Demo:
    now: datetime
    rng: random.Random
    seed: int
    agents: dict[str, Agent]
    cards: dict[tuple[str, str], Card]
    merchants: dict[str, Merchant]
    queue: list[tuple[datetime, int, Event]] = field(default_factory=list)
    order: count[int] = field(default_factory=count)
    decided: int = 0
    approved: int = 0
    declines: Counter[str] = field(default_factory=Counter)
    answered: set[int] = field(default_factory=set)

    def add(self, at: datetime, event: Event) -> None:
        if at <= self.now:
            heapq.heappush(self.queue, (at, next(self.order), event))

    def play(self) -> None:
        """Every event in time order, with beat's sweeps every hour in between."""
        sweep_at = self.queue[0][0] if self.queue else self.now
        while self.queue:
            at, _, event = heapq.heappop(self.queue)
            while sweep_at <= at:
                self.sweep(sweep_at)
                sweep_at += SWEEP_EVERY
            if isinstance(event, Charge):
                self.charge(at, event)
            elif isinstance(event, Posting):
                self.post(at, event)
            elif isinstance(event, Reply):
                self.reply(at, event)
            else:
                self.ask(at, event)
        self.sweep(self.now)

    def sweep(self, at: datetime) -> None:
        holds_expire(now=at)
        approvals_expire(now=at)

    def charge(self, at: datetime, charge: Charge) -> None:
        card = self.cards[(charge.agent, charge.vendor)]
        merchant = charge.merchant or self.merchants[charge.vendor]
        self.decided += 1
        network_id = f"demo_{self.seed}_{self.decided}"
        decided = authorization_decide(
            request=AuthorizationRequest(
                network_id=network_id,
                card_id=str(card.pk),
                amount=charge.amount,
                currency=charge.currency,
                merchant_mcc=merchant.mcc,
                merchant_name=merchant.name,
                merchant_network_id=merchant.network_id,
                merchant_country=merchant.country,
                trace_id=charge.trace,
            ),
            now=at,
        ).decided
        if decided.decision == Decision.APPROVED:
            self.approved += 1
            if charge.settle:
                self.settle(at, network_id, str(card.pk), charge)
            return
        self.declines[decided.reason] += 1
        request_id = decided.approval_id
        if charge.answer and request_id is not None and request_id not in self.answered:
            self.answered.add(request_id)
            self.add(at + charge.answer.after, Reply(request_id, charge.answer))

    def settle(self, at: datetime, network_id: str, card_id: str, charge: Charge) -> None:
        """Mostly captured (a few a little higher: a tip or FX drift), some reversed, some
        never settled (the hold lapses), a few partly refunded two days later."""
        roll = self.rng.random()
        later = at + timedelta(minutes=self.rng.randint(20, 600))
        amount, currency = charge.amount, charge.currency
        if roll < 0.80:
            self.add(later, Posting("capture", network_id, card_id, amount, currency))
        elif roll < 0.85:
            self.add(
                later, Posting("capture", network_id, card_id, amount + Decimal("0.37"), currency)
            )
        elif roll < 0.95:
            self.add(later, Posting("reverse", network_id, card_id, amount, currency))
        if roll < 0.03:
            refund = (amount / 2).quantize(Decimal("0.01"))
            self.add(
                later + timedelta(days=2), Posting("refund", network_id, card_id, refund, currency)
            )

    def post(self, at: datetime, posting: Posting) -> None:
        network_id = posting.network_id
        if posting.action == "capture":
            authorization_capture(
                network_id=network_id,
                amount=posting.amount,
                currency=posting.currency,
                network_txn_id=f"{network_id}_cap",
                now=at,
            )
        elif posting.action == "reverse":
            authorization_reverse(network_id=network_id, now=at)
        else:
            refund_record(
                card_id=posting.card_id,
                amount=posting.amount,
                currency=posting.currency,
                network_txn_id=f"{network_id}_refund",
                authorization_network_id=network_id,
                now=at,
            )

    def reply(self, at: datetime, reply: Reply) -> None:
        request = ApprovalRequest.objects.select_related("agent__principal").get(
            pk=reply.request_id
        )
        principal = request.agent.principal
        label = f"{principal.email} (slack:{principal.slack_user_id})"
        answer = reply.answer
        if answer.grant:
            approval_grant(
                request=request,
                actor_label=label,
                via=DecisionChannel.SLACK,
                amount=answer.amount,
                note=answer.note,
                now=at,
            )
        else:
            approval_deny(
                request=request,
                actor_label=label,
                via=DecisionChannel.SLACK,
                note=answer.note,
                now=at,
            )

    def ask(self, at: datetime, ask: Ask) -> None:
        approval_request_ask(
            agent=self.agents[ask.agent],
            scope=ask.scope,
            amount=ask.amount,
            reason=ask.reason,
            now=at,
        )

    def freeze_and_decline(self) -> None:
        """Bob freezes deploy-bot's OVH card after the look-alike charge; OVH's renewal is
        declined. At the real time: the freeze's card event cannot be back-dated."""
        card = self.cards[("deploy-bot", "ovh")]
        card_freeze(
            card=card,
            actor=Actor(label="user:bob", is_staff=True),
            reason="A charge under OVH's name from an unknown merchant id; asking OVH first.",
        )
        at = max(self.now, timezone.now())
        self.charge(at, Charge("deploy-bot", "ovh", Decimal("14.99"), "EUR", settle=False))


def seed_demo_spend(*, now: datetime | None = None, seed: int = 2026) -> DemoSummary:
    """Generate the demo's history up to `now` (default: the current time)."""
    now = now or timezone.now()
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible on purpose)
    agents = {agent.name: agent for agent in Agent.objects.filter(name__in=ROUTINES)}
    cards = {
        (card.agent.name, card.vendor.slug): card
        for card in Card.objects.filter(agent__in=agents.values(), is_ephemeral=False)
        .exclude(status=CardStatus.CLOSED)
        .select_related("agent", "vendor")
    }
    merchants = {
        vendor.slug: vendor_merchant(vendor)
        for vendor in Vendor.objects.filter(slug__in=DESCRIPTORS)
    }
    demo = _Demo(now=now, rng=rng, seed=seed, agents=agents, cards=cards, merchants=merchants)
    for at, event in [*_routine(rng, now), *_scenes(rng, now)]:
        demo.add(at, event)
    demo.play()
    demo.freeze_and_decline()
    approvals = dict(
        ApprovalRequest.objects.values_list("status").annotate(n=Count("id")).order_by("status")
    )
    return DemoSummary(
        decided=demo.decided,
        approved=demo.approved,
        declines=dict(sorted(demo.declines.items())),
        approvals=approvals,
    )


# --- x402: pay-per-call APIs paid in USDC ----------------------------------------------

# (hours ago, trace, price in USDC's smallest unit, what the server said)
DEMO_X402 = [
    (30, "PR-4870", "10000", "settled"),
    (29, "PR-4870", "250000", "settled"),
    (26, "PR-4870", "6000000", "declined"),  # above the starter policy's $5 a call
    (7, "PR-4881", "1500000", "settled"),
    (5, "PR-4881", "50000", "never"),  # never settled: released once it lapsed
    (2, "PR-4881", "1500", "settled"),  # 0.0015 USDC: exact, counted as a cent
]
DEMO_X402_PAYEE = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"


def seed_demo_x402(*, now: datetime | None = None) -> int:
    """claude-code-main's x402 calls to a paid search API over the last day and a half,
    decided and signed by the real wallet (Base Sepolia: test money), with settlements
    reported and the one that never settled released. Returns how many were asked."""
    import base64
    import json
    import secrets

    from wallets.x402.services import (
        PayRequest,
        x402_pay,
        x402_release_lapsed,
        x402_settlement_record,
    )

    now = now or timezone.now()
    agent = Agent.objects.get(name="claude-code-main")
    for n, (hours_ago, trace_id, atomic, outcome) in enumerate(DEMO_X402):
        at = now - timedelta(hours=hours_ago)
        required = {
            "x402Version": 2,
            "resource": {"url": "https://search.example.dev/v1/query"},
            "accepts": [
                {
                    "scheme": "exact",
                    "network": "eip155:84532",
                    "amount": atomic,
                    "asset": "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
                    "payTo": DEMO_X402_PAYEE,
                    "maxTimeoutSeconds": 60,
                    "extra": {"name": "USDC", "version": "2"},
                }
            ],
        }
        paid = x402_pay(
            request=PayRequest(
                agent_id=agent.pk,
                idempotency_key=f"demo-x402-{n}",
                payment_required=base64.b64encode(json.dumps(required).encode()).decode(),
                resource="https://search.example.dev/v1/query",
                trace_id=trace_id,
            ),
            now=at,
        )
        if outcome == "settled" and paid.payment.status == "signed":
            response = {"success": True, "transaction": "0x" + secrets.token_hex(32)}
            x402_settlement_record(
                payment=paid.payment,
                payment_response=base64.b64encode(json.dumps(response).encode()).decode(),
                now=at + timedelta(seconds=1),
            )
    x402_release_lapsed(now=now)
    return len(DEMO_X402)
