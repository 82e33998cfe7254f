"""The HTMX portal's server time with 1,000 agents, 6,000 cards and 1,000,000 ledger entries.

    .venv/bin/python bench/portal.py               # builds the data set once, then measures
    .venv/bin/python bench/portal.py --rebuild     # build it again even when it is cached
    .venv/bin/python bench/portal.py --quick       # 100 agents, 50,000 entries, 10 loads

The data set lives in its own database (default agentwallet_bench_portal), built and
measured on the bench's clock (`bench_clock`: late in the previous month, so month-to-date
windows are full), and kept: a later run reuses it while its sizes and that clock match.
It is built in a child process, so the measuring process starts with a clean heap.
Agents and cards are provisioned through `wallets.services.agent_provision`; the
history (authorizations, holds, captures, releases, reversals, refunds, in several
currencies with FX, on a few thousand traces over the last 60 days, with decided approval
requests) is written with COPY, and the spend counters are computed from it in SQL as
`ledger.services.counters_rebuild` would (the smoke test checks they are the same); then
cards are frozen and cap declines raise pending approvals through the real services.

Each page in PAGES is loaded in-process with Django's test client, signed in as a
superuser and as an engineering lead of one team: server time = the time to the full
response (middleware, view, template; a streamed answer is consumed to its end),
p50/p95/max over N loads after a warm-up, and the SQL queries of one more load. A page
whose URL is not routed (yet) is reported as missing. Before the pages, the CSV export of
every entry: wall time, rows, bytes and the process's RSS growth, at its first tenth
(100,000 rows) and at the end. Targets: every page p95 under 150 ms; the export of
1,000,000 rows under 20 s with flat memory. A missed page's slowest query is shown with
EXPLAIN ANALYZE; bench/README.md has the figures and what costs them.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import math
import multiprocessing
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import harness
import psutil

# The portal's pages, one row each: the path (placeholders are filled per user by
# `page_arguments`: an agent, card, trace, policy of theirs, an entry id in the middle of
# their ledger, a search term), and whether its HTMX fragment is measured too
# (HX-Request: true). Add a page here; one whose URL is not routed is "missing".
PAGES: list[tuple[str, bool]] = [
    ("/", True),
    # The dashboard's panels that load after it (hx-trigger="load"), each its own URL.
    ("/dashboard/daily/", True),
    ("/dashboard/vendors/", True),
    ("/dashboard/traces/", True),
    ("/agents/", True),
    ("/agents/?q={q}", True),
    ("/agents/{agent_id}/", False),
    ("/cards/{card_id}/", False),
    ("/approvals/", True),
    ("/policies/", True),
    ("/policies/{policy_slug}/", False),
    ("/vendors/", True),
    ("/ledger/", True),
    ("/ledger/?trace_id={trace_id}", True),
    ("/ledger/?before={before_id}", True),
    ("/traces/", True),
    ("/traces/{trace_id}/", False),
    ("/audit/", True),
]
EXPORT_PATH = "/ledger/export.csv"

TARGETS = {
    "page_p95_ms_below": 150.0,
    "export_seconds_below": 20.0,
    # Flat memory: what the export's RSS grows by after its first tenth (100,000 rows).
    "export_rss_growth_after_first_tenth_mb_below": 32.0,
}
MIN_LOADS, PAGE_BUDGET_S = 5, 20.0
DEFAULT_DATABASE = "agentwallet_bench_portal"
BUILD_VERSION = 2  # bump when the builder changes what it writes
SEED = 20260101


@dataclass(frozen=True)
class Sizes:
    agents: int = 1000
    teams: int = 8
    cards_per_agent: int = 6
    entries: int = 1_000_000
    traces: int = 3000
    days: int = 60
    decided_approvals: int = 1500
    pending_approvals: int = 40
    frozen_cards: int = 120
    frozen_agents: int = 5


FULL = Sizes()
QUICK = Sizes(
    agents=100,
    teams=4,
    entries=50_000,
    traces=300,
    decided_approvals=100,
    pending_approvals=10,
    frozen_cards=12,
    frozen_agents=2,
)
TEAMS = ("platform", "ml", "data", "web", "mobile", "infra", "security", "research")
AGENT_KINDS = ("claude-code", "codex", "ci-runner", "deploy-bot", "eval-runner", "copilot")
CI_KINDS = ("ci-runner", "deploy-bot")
SUPERUSER, LEAD = "bench-admin", "bench-lead"


# --- The data set ----------------------------------------------------------------------


def build(sizes: Sizes, *, now: datetime | None = None) -> dict[str, float]:
    """Write the data set into the current (migrated, empty) database. Returns seconds
    per step."""
    from django.utils import timezone

    now = now or timezone.now()
    rng = random.Random(SEED)
    took: dict[str, float] = {}

    def step(name: str, started: float) -> None:
        took[name] = round(time.monotonic() - started, 1)
        harness.log(f"  {name}: {took[name]} s")

    started = time.monotonic()
    policies = _policies()
    agents = _agents(sizes, policies, rng, now)
    step("agents and cards (agent_provision)", started)
    started = time.monotonic()
    history = _history(sizes, agents, rng, now)
    step("history generated", started)
    started = time.monotonic()
    _write_history(history, sizes, rng, now)
    step("history written (COPY)", started)
    started = time.monotonic()
    counters_from_ledger(now=now)
    step("spend counters from the ledger", started)
    started = time.monotonic()
    _present(sizes, agents, rng)
    _users(agents)
    step("freezes, cap declines, approvals, users", started)
    return took


def _policies() -> dict[str, Any]:
    from ledger.fx import fx_rates_load
    from policies.models import Vendor
    from policies.services import policy_create

    fx_rates_load()  # the ECB rates the project ships
    vendors = {vendor.slug: vendor for vendor in Vendor.objects.filter(is_curated=True)}
    llm = [vendors[slug] for slug in ("openai", "anthropic", "github", "aws", "sentry", "vercel")]
    return {
        "bench-eng": policy_create(
            slug="bench-eng",
            name="Engineering agents",
            currency="USD",
            daily_cap=Decimal("2000"),
            monthly_cap=Decimal("40000"),
            per_trace_cap=Decimal("20000"),
            default_vendors=llm,
            vendor_caps={vendors["openai"]: Decimal("15000")},
        ),
        "bench-eu": policy_create(
            slug="bench-eu",
            name="EU research agents",
            currency="EUR",
            daily_cap=Decimal("2000"),
            monthly_cap=Decimal("40000"),
            time_zone="Europe/Berlin",
            default_vendors=llm,
        ),
        "bench-ci": policy_create(
            slug="bench-ci",
            name="CI and deploys",
            currency="USD",
            daily_cap=Decimal("20000"),
            monthly_cap=Decimal("400000"),
            velocity_per_hour=2000,
            default_vendors=llm,
        ),
        "vendors": vendors,
    }


@dataclass
class BenchCard:
    id: Any
    vendor_id: int
    currencies: list[str]
    mcc: str
    merchant_name: str
    merchant_network_id: str
    weight: float


@dataclass
class BenchAgent:
    id: Any
    index: int
    name: str
    kind: str
    team: int
    currency: str
    daily_cap: Decimal
    cards: list[BenchCard]
    weight: float


def _agents(sizes: Sizes, policies: dict[str, Any], rng: random.Random, now: datetime) -> list:
    from cards.models import Card, CardEvent
    from wallets.actors import Actor
    from wallets.models import Agent
    from wallets.services import agent_provision, principal_get_or_create

    vendors = sorted(policies["vendors"].values(), key=lambda vendor: vendor.slug)
    popular = ["openai", "anthropic", "aws", "github"]
    teams = TEAMS[: sizes.teams]
    harness.principals_verified([f"{team}@example.com" for team in teams])
    for team in teams:
        principal_get_or_create(email=f"{team}@example.com", name=f"{team.title()} team")
    made = []
    for n in range(sizes.agents):
        kind = AGENT_KINDS[n % len(AGENT_KINDS)]
        team = (n // len(AGENT_KINDS)) % len(teams)
        policy = policies["bench-ci" if kind in CI_KINDS else "bench-eng"]
        if teams[team] in ("ml", "research") and kind not in CI_KINDS:
            policy = policies["bench-eu"]
        # Two of the popular vendors, the rest across the whole catalogue.
        chosen = [policies["vendors"][slug] for slug in rng.sample(popular, 2)]
        chosen += rng.sample([v for v in vendors if v not in chosen], sizes.cards_per_agent - 2)
        provisioned = agent_provision(
            name=f"{kind}-{n:04d}",
            principal_email=f"{teams[team]}@example.com",
            policy=policy,
            actor=Actor.system("bench"),
            vendors=chosen,
        )
        cards = []
        for new in provisioned.cards:
            vendor = new.card.vendor
            cards.append(
                BenchCard(
                    id=new.card.pk,
                    vendor_id=vendor.pk,
                    currencies=list(vendor.currencies or ["USD"]),
                    mcc=new.card.allowed_mccs[0],
                    merchant_name=(vendor.descriptors or [vendor.name.upper()])[0],
                    merchant_network_id=(vendor.network_ids or [f"BENCH{vendor.pk:06d}"])[0],
                    weight=rng.paretovariate(1.5),
                )
            )
        made.append(
            BenchAgent(
                id=provisioned.agent.pk,
                index=n,
                name=provisioned.agent.name,
                kind=kind,
                team=team,
                currency=policy.currency,
                daily_cap=policy.daily_cap.amount,
                cards=cards,
                weight=min(rng.paretovariate(1.3), 60.0),
            )
        )
    # Provisioned before the history starts (these rows are not history).
    born = now - timedelta(days=sizes.days + 1)
    Agent.objects.update(created_at=born)
    Card.objects.update(created_at=born)
    CardEvent.objects.update(created_at=born)
    return made


@dataclass
class History:
    # Rows in the order of AUTH_COLUMNS, ENTRY_COLUMNS and EVENT_COLUMNS; ids are given on
    # writing, and an entry's or event's authorization_id holds the authorization's row.
    authorizations: list[list[Any]]
    entries: list[list[Any]]
    events: list[list[Any]]
    traces: set[str]


# The COPY's column lists, as the tables name them.
AUTH_COLUMNS = (  # noqa: SIM905
    "id network_id card_id agent_id vendor_id requested_card_id amount_currency amount "
    "cap_amount_currency cap_amount fx_rate fx_rate_date merchant_name merchant_mcc "
    "merchant_network_id merchant_country trace_id decision reason cap_scope "
    "cap_limit_currency cap_limit cap_remaining_currency cap_remaining merchant_lock "
    "approval_request_id hold_state held_cents captured_cents reversed_cents refunded_cents "
    "decided_at resolved_at request_sha256"
).split()
ENTRY_COLUMNS = (  # noqa: SIM905
    "id kind rail flag agent_id card_id vendor_id authorization_id network_txn_id trace_id "
    "amount_currency amount cap_amount_currency cap_amount cap_cents fx_rate memo "
    "created_at effective_at"
).split()
EVENT_COLUMNS = (  # noqa: SIM905
    "id event_id kind target payload_sha256 agent_id authorization_id hold_state held_cents "
    "created_at"
).split()
A = {name: index for index, name in enumerate(AUTH_COLUMNS)}
E = {name: index for index, name in enumerate(ENTRY_COLUMNS)}
# Lifecycles of an approved authorization, with their weights and entries written.
LIFECYCLES = {"capture": 62, "partial": 8, "refund": 9, "reverse": 12, "expire": 5, "open": 4}
DECLINE_SHARE = 0.06
DECLINES = (
    ("card_frozen", 15),
    ("mcc_not_allowed", 12),
    ("merchant_not_allowed", 13),
    ("daily_cap_exceeded", 35),
    ("velocity_exceeded", 10),
    ("trace_cap_exceeded", 15),
)


def _history(sizes: Sizes, agents: list[BenchAgent], rng: random.Random, now: datetime) -> History:
    """Authorizations and their entries, at random times over `sizes.days`, until the
    ledger holds exactly `sizes.entries` entries."""
    from django.conf import settings

    from agentwallet.lib.money import convert_down, convert_up, from_cents, to_cents
    from ledger.fx import fx_quote, fx_rates_date

    span = timedelta(days=sizes.days).total_seconds()
    expiry = timedelta(days=settings.AGENTWALLET_HOLD_EXPIRY_DAYS)
    rates: dict[tuple[str, str], Decimal] = {}
    rates_date = fx_rates_date()

    def rate(source: str, target: str) -> Decimal:
        if (source, target) not in rates:
            rates[source, target] = fx_quote(source, target).rate
        return rates[source, target]

    # Cumulative weights: a draw is a bisection, not a sum over a thousand agents.
    groups = math.ceil(len(agents) / 4)
    slots = max(1, sizes.traces // groups)
    agent_weights = list(itertools.accumulate(agent.weight for agent in agents))
    card_weights = {a.id: list(itertools.accumulate(c.weight for c in a.cards)) for a in agents}
    lifecycle_names, lifecycle_weights = zip(*LIFECYCLES.items(), strict=True)
    decline_names, decline_weights = zip(*DECLINES, strict=True)
    history = History(authorizations=[], entries=[], events=[], traces=set())
    serial = 0

    def entry(auth, kind, amount, currency, cap_cents, created, memo="", flag="", txn=None):
        history.entries.append(
            [
                None,
                kind,
                "card",
                flag,
                auth[A["agent_id"]],
                auth[A["card_id"]],
                auth[A["vendor_id"]],
                auth,
                txn,
                auth[A["trace_id"]],
                currency,
                amount,
                auth[A["cap_amount_currency"]],
                from_cents(cap_cents),
                cap_cents,
                auth[A["fx_rate"]],
                memo,
                created,
                auth[A["decided_at"]],
            ]
        )

    def event(auth, kind, txn, created, state, held):  # EVENT_COLUMNS
        digest = hashlib.sha256(txn.encode()).hexdigest()
        history.events.append(
            [
                None,
                txn,
                kind,
                auth[A["network_id"]],
                digest,
                auth[A["agent_id"]],
                auth,
                state,
                held,
                created,
            ]
        )

    while len(history.entries) < sizes.entries:
        serial += 1
        left = sizes.entries - len(history.entries)
        agent = rng.choices(agents, cum_weights=agent_weights)[0]
        card = rng.choices(agent.cards, cum_weights=card_weights[agent.id])[0]
        age = rng.random() * span
        if left < 4:  # the last few: a lifecycle with exactly the entries left, recent
            age = rng.uniform(2, 5) * 86400
        decided = now - timedelta(seconds=age)
        currency = agent.currency if agent.currency in card.currencies else card.currencies[0]
        if currency == agent.currency and len(card.currencies) > 1 and rng.random() < 0.2:
            currency = rng.choice([c for c in card.currencies if c != agent.currency])
        fx = rate(currency, agent.currency)
        amount = from_cents(max(50, min(int(rng.lognormvariate(math.log(400), 1.1)), 60000)))
        cap_cents = to_cents(convert_up(amount, fx))
        trace = ""
        if rng.random() < 0.75:
            # A pull request: a group of 4 neighbouring agents works on one for a few days
            # (sizes.traces of them in all); CI agents also ship a team's weekly release.
            slot = min(int((1 - age / span) * slots), slots - 1)
            slot = min(max(slot + rng.choice((-1, 0, 0, 0, 0, 0, 0, 0, 0, 1)), 0), slots - 1)
            trace = f"PR-{4000 + slot * groups + agent.index // 4}"
            if agent.kind in CI_KINDS and rng.random() < 0.3:
                trace = f"release-{TEAMS[agent.team]}-w{int((span - age) // (7 * 86400))}"
            history.traces.add(trace)
        auth = [None] * len(AUTH_COLUMNS)
        auth[A["network_id"]] = f"bench-auth-{serial}"
        auth[A["card_id"]] = card.id
        auth[A["agent_id"]] = agent.id
        auth[A["vendor_id"]] = card.vendor_id
        auth[A["requested_card_id"]] = str(card.id)
        auth[A["amount_currency"]] = currency
        auth[A["amount"]] = amount
        auth[A["cap_amount_currency"]] = agent.currency
        auth[A["cap_amount"]] = from_cents(cap_cents)
        auth[A["fx_rate"]] = fx
        auth[A["fx_rate_date"]] = rates_date if currency != agent.currency else None
        auth[A["merchant_name"]] = card.merchant_name
        auth[A["merchant_mcc"]] = card.mcc
        auth[A["merchant_network_id"]] = card.merchant_network_id
        auth[A["merchant_country"]] = "US"
        auth[A["trace_id"]] = trace
        auth[A["reason"]] = auth[A["cap_scope"]] = auth[A["merchant_lock"]] = ""
        auth[A["request_sha256"]] = ""
        auth[A["held_cents"]] = auth[A["captured_cents"]] = 0
        auth[A["reversed_cents"]] = auth[A["refunded_cents"]] = 0
        auth[A["decided_at"]] = decided
        history.authorizations.append(auth)
        if left >= 4 and rng.random() < DECLINE_SHARE:
            reason = rng.choices(decline_names, weights=decline_weights)[0]
            auth[A["decision"]], auth[A["reason"]], auth[A["hold_state"]] = (
                "declined",
                reason,
                "none",
            )
            if reason == "merchant_not_allowed":
                auth[A["merchant_lock"]] = "descriptor"
                auth[A["merchant_name"]] = "PIZZA PALACE"
            elif reason == "daily_cap_exceeded":
                auth[A["cap_scope"]] = "daily"
                auth[A["cap_limit_currency"]] = auth[A["cap_remaining_currency"]] = agent.currency
                auth[A["cap_limit"]] = agent.daily_cap
                auth[A["cap_remaining"]] = from_cents(rng.randint(0, max(cap_cents - 1, 0)))
            elif reason == "trace_cap_exceeded" and trace:
                auth[A["cap_scope"]] = "trace"
            elif reason == "velocity_exceeded":
                auth[A["cap_scope"]] = "velocity"
            continue
        auth[A["decision"]] = "approved"
        auth[A["held_cents"]] = cap_cents
        entry(auth, "hold", amount, currency, cap_cents, decided)
        lifecycle = rng.choices(lifecycle_names, weights=lifecycle_weights)[0]
        if left < 4:
            lifecycle = {1: "open", 2: "reverse", 3: "capture"}[left]
        captured_at = decided + timedelta(seconds=rng.uniform(60, 36 * 3600))
        refunded_at = captured_at + timedelta(days=rng.uniform(1, 10))
        reversed_at = decided + timedelta(seconds=rng.uniform(60, 12 * 3600))
        expired_at = decided + expiry + timedelta(seconds=rng.uniform(0, 3600))
        last = {
            "capture": captured_at,
            "partial": max(captured_at, reversed_at),
            "refund": refunded_at,
            "reverse": reversed_at,
            "expire": expired_at,
            "open": decided,
        }[lifecycle]
        if last >= now:  # not settled yet: the hold is still open
            lifecycle = "capture" if lifecycle == "refund" and captured_at < now else "open"
        if lifecycle == "open" and decided < now - expiry:
            lifecycle = "expire"
        merchant_cents = to_cents(amount)
        if lifecycle in ("capture", "refund", "partial"):
            captured = amount
            if lifecycle == "partial":
                captured = from_cents(max(1, merchant_cents * rng.randint(50, 95) // 100))
                captured_at, reversed_at = (
                    min(captured_at, reversed_at),
                    max(captured_at, reversed_at),
                )
            captured_cents = to_cents(convert_up(captured, fx))
            released = min(cap_cents, captured_cents)
            txn = f"bench-capture-{serial}"
            held = cap_cents - released
            entry(auth, "capture", captured, currency, captured_cents, captured_at, txn=txn)
            entry(
                auth,
                "release",
                from_cents(released),
                currency,
                -released,
                captured_at,
                "cleared by capture",
            )
            auth[A["captured_cents"]] = to_cents(captured)
            auth[A["held_cents"]] = held
            state = "open" if held else "closed"
            event(auth, "capture", txn, captured_at, state, held)
            resolved = captured_at
            if lifecycle == "partial":
                txn = f"bench-reversal-{serial}"
                outstanding = merchant_cents - to_cents(captured)
                entry(
                    auth,
                    "release",
                    from_cents(outstanding),
                    currency,
                    -held,
                    reversed_at,
                    "reversal",
                    txn=txn,
                )
                auth[A["reversed_cents"]] = outstanding
                event(auth, "reversal", txn, reversed_at, "closed", 0)
                resolved = reversed_at
            auth[A["held_cents"]], auth[A["hold_state"]], auth[A["resolved_at"]] = (
                0,
                "closed",
                resolved,
            )
            if lifecycle == "refund":
                refund = captured if rng.random() < 0.6 else from_cents(max(1, merchant_cents // 2))
                txn = f"bench-refund-{serial}"
                back = to_cents(convert_down(refund, fx))
                entry(auth, "refund", refund, currency, -back, refunded_at, "refund", txn=txn)
                auth[A["refunded_cents"]] = to_cents(refund)
                event(auth, "refund", txn, refunded_at, "closed", 0)
        elif lifecycle == "reverse":
            txn = f"bench-reversal-{serial}"
            entry(auth, "release", amount, currency, -cap_cents, reversed_at, "reversal", txn=txn)
            auth[A["held_cents"]], auth[A["reversed_cents"]] = 0, merchant_cents
            auth[A["hold_state"]], auth[A["resolved_at"]] = "closed", reversed_at
            event(auth, "reversal", txn, reversed_at, "closed", 0)
        elif lifecycle == "expire":
            entry(auth, "release", amount, currency, -cap_cents, expired_at, "hold expired")
            auth[A["held_cents"]] = 0
            auth[A["hold_state"]], auth[A["resolved_at"]] = "expired", expired_at
        else:
            auth[A["hold_state"]] = "open"
    return history


def _write_history(history: History, sizes: Sizes, rng: random.Random, now: datetime) -> None:
    """COPY the history in time order (ids grow with time, as they would have), with the
    decided approval requests its cap declines raised, in one transaction (foreign keys
    are checked at its commit)."""
    from django.db import connection, transaction
    from djmoney.money import Money

    from approvals.models import ApprovalRequest, CapBump, OutboxMessage
    from ledger.models import TraceBudget

    history.authorizations.sort(key=lambda row: row[A["decided_at"]])
    for number, auth in enumerate(history.authorizations, 1):
        auth[A["id"]] = number
    history.entries.sort(key=lambda row: row[E["created_at"]])
    for number, row in enumerate(history.entries, 1):
        row[E["id"]] = number
        row[E["authorization_id"]] = row[E["authorization_id"]][A["id"]]
    history.events.sort(key=lambda row: row[-1])
    for number, row in enumerate(history.events, 1):
        row[0] = number
        row[6] = row[6][A["id"]]

    # Some cap declines older than a day were answered: approved (with a bump), denied,
    # or left to lapse.
    capped = [
        auth
        for auth in history.authorizations
        if auth[A["reason"]] == "daily_cap_exceeded"
        and auth[A["decided_at"]] < now - timedelta(days=1)
    ]
    requests, bumps, messages = [], [], []
    for number, auth in enumerate(rng.sample(capped, min(sizes.decided_approvals, len(capped))), 1):
        auth[A["approval_request_id"]] = number
        currency = auth[A["cap_amount_currency"]]
        created = auth[A["decided_at"]]
        status = rng.choices(["approved", "denied", "expired"], weights=[50, 25, 25])[0]
        decided = created + timedelta(minutes=rng.uniform(1, 120))
        if status == "expired":
            decided = created + timedelta(hours=24)
        requested = Money(auth[A["cap_amount"]], currency)
        request = ApprovalRequest(
            pk=number,
            agent_id=auth[A["agent_id"]],
            scope="daily",
            scope_key="daily",
            cap_limit=Money(auth[A["cap_limit"]], currency),
            spent=Money(auth[A["cap_limit"]] - auth[A["cap_remaining"]], currency),
            requested_amount=requested,
            triggering_authorization_id=auth[A["id"]],
            declines_attached=rng.randint(1, 4),
            reason="Declined: daily_cap_exceeded",
            status=status,
            decided_by={"approved": "finance", "denied": "lead", "expired": "system"}[status],
            decided_via={"approved": "slack", "denied": "portal", "expired": "system"}[status],
            decided_at=decided,
            approved_amount=requested if status == "approved" else None,
            slack_channel="C0BENCH",
            slack_ts=f"{created.timestamp():.6f}",
            expires_at=created + timedelta(hours=24),
            created_at=created,
        )
        requests.append(request)
        if status == "approved":
            bumps.append(
                CapBump(
                    agent_id=request.agent_id,
                    approval_id=number,
                    scope="daily",
                    scope_key="daily",
                    amount=requested,
                    valid_from=decided,
                    valid_until=decided + timedelta(hours=8),
                )
            )
        messages.append(
            OutboxMessage(
                kind="approval_request",
                idempotency_key=f"approval:{number}:request",
                agent_id=request.agent_id,
                approval_id=number,
                channel="C0BENCH",
                payload={"approval_id": number},
                status="sent",
                attempts=1,
                next_attempt_at=created,
                slack_ts=request.slack_ts,
                created_at=created,
                sent_at=created + timedelta(seconds=1),
            )
        )

    tables = ["ledger_authorization", "ledger_ledgerentry", "ledger_networkevent"]
    with transaction.atomic(), connection.cursor() as cursor, _bulk_load(cursor, tables):
        for table, columns, rows in (
            ("ledger_authorization", AUTH_COLUMNS, history.authorizations),
            ("ledger_ledgerentry", ENTRY_COLUMNS, history.entries),
            ("ledger_networkevent", EVENT_COLUMNS, history.events),
        ):
            started = time.monotonic()
            copy_rows(cursor, table, columns, rows)
            harness.log(f"    {table}: {len(rows)} rows in {time.monotonic() - started:.1f} s")
        ApprovalRequest.objects.bulk_create(requests, batch_size=2000)
        CapBump.objects.bulk_create(bumps, batch_size=2000)
        OutboxMessage.objects.bulk_create(messages, batch_size=2000)
        TraceBudget.objects.bulk_create(
            [TraceBudget(trace_id=trace) for trace in sorted(history.traces)], batch_size=5000
        )
        for table in (
            "ledger_authorization",
            "ledger_ledgerentry",
            "ledger_networkevent",
            "approvals_approvalrequest",
        ):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"
            )


@contextmanager
def _bulk_load(cursor: Any, tables: list[str]) -> Iterator[None]:
    """The tables without their foreign keys, unique constraints and secondary indexes
    while they are loaded, then the same ones again, read from the catalogue: each index
    is built once over the loaded rows and each key checked in one pass, rather than row
    by row (several times faster for a million rows). Primary keys and checks stay.
    Pending foreign-key checks run first: a table with some cannot be altered."""
    cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    cursor.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = ANY(%s::regclass[]) AND contype IN ('u', 'f') ORDER BY contype DESC",
        [tables],
    )
    constraints = cursor.fetchall()  # unique ones first: they come back first too
    cursor.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i"
        " WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary"
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
        [tables],
    )
    indexes = cursor.fetchall()
    for table, name, _ in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _ in indexes:
        cursor.execute(f"DROP INDEX {name}")
    yield
    cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
    for table, name, definition in constraints:
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _, definition in indexes:
        cursor.execute(definition)
    cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # Django's foreign keys, as they were


def copy_rows(cursor: Any, table: str, columns: list[str], rows: list[list[Any]]) -> None:
    """COPY in text format, written in blocks: str() of each value is what PostgreSQL
    reads (UUIDs, Decimals, aware datetimes); None is NULL. The bench's strings hold no
    tab, newline or backslash, so nothing needs escaping."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for start in range(0, len(rows), 20_000):
            block = rows[start : start + 20_000]
            copy.write(
                "".join(
                    "\t".join("\\N" if value is None else str(value) for value in row) + "\n"
                    for row in block
                )
            )


# Every spend counter ledger.services.counters_rebuild writes from the ledger, less the
# minute and hour buckets counters_prune then drops, in one statement (the bench's
# policies keep months in their own zones; no MonthCounterZone). The Python rebuild
# takes minutes for a million entries; the smoke test checks that both write the same.
COUNTERS_FROM_LEDGER = """
WITH e AS (
    SELECT e.agent_id, e.card_id, e.vendor_id, e.trace_id, e.cap_amount_currency,
           e.effective_at, e.cap_cents, CASE WHEN e.kind = 'hold' THEN 1 ELSE 0 END AS hold,
           date_trunc('month', e.effective_at, p.time_zone) AS month
    FROM ledger_ledgerentry e
    JOIN wallets_agent a ON a.id = e.agent_id
    JOIN policies_policy p ON p.id = a.policy_id
)
INSERT INTO ledger_spendcounter (scope, grain, bucket_start, cents, holds)
SELECT scope, grain, bucket_start, SUM(cap_cents), SUM(hold) FROM (
    SELECT 'agent:' || agent_id AS scope, 'min' AS grain,
           date_trunc('minute', effective_at, 'UTC') AS bucket_start, cap_cents, hold
    FROM e WHERE date_trunc('minute', effective_at, 'UTC') >= %(cutoff)s
    UNION ALL
    SELECT 'agent:' || agent_id, 'hour', date_trunc('hour', effective_at, 'UTC'), cap_cents, hold
    FROM e WHERE date_trunc('hour', effective_at, 'UTC') >= %(cutoff)s
    UNION ALL
    SELECT 'agent:' || agent_id, 'month', month, cap_cents, hold FROM e
    UNION ALL
    SELECT 'card:' || card_id, 'month', month, cap_cents, hold FROM e WHERE card_id IS NOT NULL
    UNION ALL
    SELECT 'vendor:' || agent_id || ':' || vendor_id, 'month', month, cap_cents, hold
    FROM e WHERE vendor_id IS NOT NULL
    UNION ALL
    SELECT 'trace:' || cap_amount_currency || ':' || trace_id, 'total', %(lifetime)s,
           cap_cents, hold
    FROM e WHERE trace_id <> ''
) AS buckets
GROUP BY scope, grain, bucket_start
"""


def counters_from_ledger(*, now: datetime) -> int:
    """Replace the spend counters with those the ledger gives (see COUNTERS_FROM_LEDGER)."""
    from django.db import connection, transaction

    from ledger import sql
    from ledger.models import SpendCounter
    from ledger.services.counters import FINE_BUCKET_RETENTION

    with transaction.atomic(), connection.cursor() as cursor:
        SpendCounter.objects.all().delete()
        cursor.execute(
            COUNTERS_FROM_LEDGER, {"cutoff": now - FINE_BUCKET_RETENTION, "lifetime": sql.LIFETIME}
        )
        return cursor.rowcount


def _present(sizes: Sizes, agents: list[BenchAgent], rng: random.Random) -> None:
    """What happened in the last minutes, through the services: cards frozen (and a few
    thawed), agents' kill switches, and charges declined on frozen cards and over daily
    caps, which raise pending approval requests (some then approved or denied)."""
    from approvals.models import ApprovalRequest, ApprovalStatus
    from approvals.services import approval_deny, approval_grant
    from cards.models import Card, CardStatus
    from cards.services import agent_cards_freeze, card_freeze, card_unfreeze
    from ledger.services import AuthorizationRequest, authorization_decide
    from wallets.actors import Actor
    from wallets.models import Agent

    actor = Actor.system("bench")
    cards = list(Card.objects.select_related("vendor").order_by("pk"))
    frozen = rng.sample(cards, min(sizes.frozen_cards, len(cards)))
    for card in frozen:
        card_freeze(card=card, actor=actor, reason="Spend looks wrong: looking into it")
    for card in frozen[: len(frozen) // 10]:
        card_unfreeze(card=card, actor=actor, reason="False alarm")
    for agent in Agent.objects.filter(
        pk__in=[a.id for a in rng.sample(agents, sizes.frozen_agents)]
    ):
        agent_cards_freeze(agent=agent, actor=actor, reason="Runaway loop: stopped")
    by_id = {card.id: card for agent in agents for card in agent.cards}
    serial = iter(range(10**9))

    def charge(card: Card, amount: Decimal) -> None:
        owner = next(agent for agent in agents if agent.id == card.agent_id)
        facts = by_id[card.pk]
        currency = owner.currency if owner.currency in facts.currencies else facts.currencies[0]
        authorization_decide(
            request=AuthorizationRequest(
                network_id=f"bench-now-{next(serial)}",
                card_id=str(card.pk),
                amount=amount,
                currency=currency,
                merchant_mcc=facts.mcc,
                merchant_name=facts.merchant_name,
                merchant_network_id=facts.merchant_network_id,
                merchant_country="US",
            )
        )

    for card in Card.objects.filter(status=CardStatus.FROZEN).order_by("pk")[:20]:
        charge(card, Decimal("4.20"))  # declined: card_frozen
    # Over the daily cap: each raises a pending request; a quarter get approved and a
    # quarter denied, so `pending_approvals` stay pending. Team 0's agents first (the
    # lead's team), then the others.
    decided_now = sizes.pending_approvals // 4
    wanted = sizes.pending_approvals + 2 * decided_now
    leads = [a for a in agents if a.team == 0]
    others = rng.sample(agents, len(agents))
    chosen = leads[: max(wanted // 4, 1)]
    chosen += [a for a in others if a not in chosen and a.team != 0][: wanted - len(chosen)]
    chosen += [a for a in others if a not in chosen][: wanted - len(chosen)]
    for agent in chosen:
        card = Card.objects.filter(agent_id=agent.id, status=CardStatus.ACTIVE).first()
        if card is not None:
            charge(card, agent.daily_cap * 2)
            if rng.random() < 0.3:
                charge(card, agent.daily_cap * 3)  # attaches to the open request
    pending = list(ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).order_by("pk"))
    rng.shuffle(pending)
    for request in pending[:decided_now]:
        approval_grant(request=request, actor_label="finance", via="portal", note="Go ahead")
    for request in pending[decided_now : 2 * decided_now]:
        approval_deny(request=request, actor_label="finance", via="portal", note="Not today")


def _users(agents: list[BenchAgent]) -> None:
    from django.contrib.auth.models import Group, User

    from agentwallet.portal.selectors import ROLE_LEAD
    from wallets.models import Agent, TeamLead

    User.objects.create_superuser(SUPERUSER, email=f"{SUPERUSER}@example.com", password=None)
    lead = User.objects.create_user(LEAD, email=f"{LEAD}@example.com", password=None)
    lead.groups.set([Group.objects.get(name=ROLE_LEAD)])
    team = next(agent for agent in agents if agent.team == 0)
    TeamLead.objects.create(user=lead, principal_id=Agent.objects.get(pk=team.id).principal_id)


# --- The cached database, and the bench's clock -----------------------------------------

META_TABLE = "bench_portal_build"


def bench_clock(real: datetime) -> datetime:
    """When the data set is built (and measured): 15:00 UTC on the 28th of the month
    before `real`'s. Late in a month, so month-to-date windows (a trace's month, the
    month's spend) are full whatever the day the bench runs, and the same all month:
    one cached build serves every run of the month."""
    first = real.astimezone(UTC).replace(day=1, hour=15, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=28)


def _counts(cursor: Any) -> dict[str, int]:
    cursor.execute(
        "SELECT (SELECT count(*) FROM wallets_agent), (SELECT count(*) FROM cards_card),"
        " (SELECT count(*) FROM ledger_ledgerentry)"
    )
    agents, cards, entries = cursor.fetchone()
    return {"agents": agents, "cards": cards, "entries": entries}


def _expected_counts(sizes: Sizes) -> dict[str, int]:
    return {
        "agents": sizes.agents,
        "cards": sizes.agents * sizes.cards_per_agent,
        "entries": sizes.entries,
    }


def _build_info(cursor: Any) -> dict[str, Any]:
    cursor.execute(f"SELECT version, sizes, clock, built_at, seconds FROM {META_TABLE}")
    version, sizes, clock, built_at, seconds = cursor.fetchone()
    return {
        "version": version,
        "sizes": sizes,
        "clock": clock.isoformat(),
        "built_at": built_at.isoformat(),  # on the bench's clock
        "seconds": seconds,
    }


def cached_build(url: str, sizes: Sizes, clock: datetime) -> dict[str, Any] | None:
    """The build kept in `url`'s database when it has these sizes and this clock."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=5) as conn, conn.cursor() as cursor:
            found = _build_info(cursor)
            counts = _counts(cursor)
    except (psycopg.Error, TypeError):  # no database, no table or no row
        return None
    if found["version"] != BUILD_VERSION or found["sizes"] != asdict(sizes):
        return None
    if found["clock"] != clock.isoformat() or counts != _expected_counts(sizes):
        return None
    return found | {"reused": True}


def _build_child(sizes: Sizes, url: str, clock: datetime) -> None:
    """The build, in a child process (its heap is gone before anything is measured), on
    the bench's clock."""
    import psycopg
    import time_machine
    from django.db import connections
    from django.utils import timezone

    harness.log("  building on the bench's clock (the log's times too)")
    with time_machine.travel(clock, tick=True):
        started = time.monotonic()
        seconds = build(sizes)
        seconds["total"] = round(time.monotonic() - started, 1)
        built_at = timezone.now()
    connections.close_all()
    with psycopg.connect(url) as conn:
        conn.execute(
            f"CREATE TABLE {META_TABLE} (version integer, sizes jsonb, clock timestamptz,"
            " built_at timestamptz, seconds jsonb)"
        )
        conn.execute(
            f"INSERT INTO {META_TABLE} VALUES (%s, %s, %s, %s, %s)",
            [BUILD_VERSION, json.dumps(asdict(sizes)), clock, built_at, json.dumps(seconds)],
        )


def ensure_data(url: str, sizes: Sizes, *, rebuild: bool) -> dict[str, Any]:
    from django.utils import timezone

    clock = bench_clock(timezone.now())
    found = None if rebuild else cached_build(url, sizes, clock)
    if found is not None:
        from django.core.management import call_command

        harness.log(f"reusing the data set built for {found['clock']} (--rebuild to build again)")
        call_command("migrate", verbosity=0)  # migrations added since
        return found
    harness.log(f"building the data set in {url} as at {clock.isoformat()}: {asdict(sizes)}")
    harness.recreate_database(url)
    from django.db import connections

    connections.close_all()
    child = multiprocessing.get_context("fork").Process(
        target=_build_child, args=(sizes, url, clock)
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"building the data set failed (exit {child.exitcode}); see above")
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        found = _build_info(cursor)
    harness.log(f"built in {found['seconds']['total']} s")
    return found | {"reused": False}


# --- Measuring -------------------------------------------------------------------------


def page_arguments(*, username: str) -> dict[str, str]:
    """What the placeholders of PAGES stand for, for this user: their busiest agent, its
    busiest card and policy, their busiest trace, an entry id in the middle of their
    ledger, and a search term."""
    from django.contrib.auth.models import User
    from django.db import connection

    from agentwallet.portal.selectors import portal_scope
    from wallets.models import Agent

    scope = portal_scope(user=User.objects.get(username=username))
    visible = [str(pk) for pk in scope.agents().values_list("pk", flat=True)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT agent_id, count(*) FROM ledger_ledgerentry WHERE agent_id = ANY(%s::uuid[])"
            " GROUP BY agent_id ORDER BY 2 DESC, 1 LIMIT 1",
            [visible],
        )
        agent_id = cursor.fetchone()[0]
        cursor.execute(
            "SELECT card_id, count(*) FROM ledger_ledgerentry WHERE agent_id = %s"
            " GROUP BY card_id ORDER BY 2 DESC, 1 LIMIT 1",
            [agent_id],
        )
        card_id = cursor.fetchone()[0]
        cursor.execute(
            "SELECT trace_id, count(*) FROM ledger_ledgerentry"
            " WHERE agent_id = ANY(%s::uuid[]) AND trace_id <> ''"
            " GROUP BY trace_id ORDER BY 2 DESC, 1 LIMIT 1",
            [visible],
        )
        trace_id = cursor.fetchone()[0]
        cursor.execute(
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY id) FROM ledger_ledgerentry"
            " WHERE agent_id = ANY(%s::uuid[])",
            [visible],
        )
        before_id = cursor.fetchone()[0]
    agent = Agent.objects.select_related("policy").get(pk=agent_id)
    return {
        "agent_id": str(agent_id),
        "card_id": str(card_id),
        "trace_id": trace_id,
        "policy_slug": agent.policy.slug,
        "before_id": str(before_id),
        "q": "claude",
    }


def _load(client: Any, path: str, headers: dict[str, str]) -> tuple[float, int, int]:
    """One load: (seconds to the full response, status, bytes)."""
    started = time.perf_counter()
    response = client.get(path, headers=headers)
    if response.streaming:
        size = sum(len(chunk) for chunk in response.streaming_content)
        response.close()
    else:
        size = len(response.content)
    return time.perf_counter() - started, response.status_code, size


# The spend rollups as beat keeps them: folded a minute after posting, each minute, so
# the pages read up to about two minutes of the ledger after the mark. 2,000 entries is
# two minutes at 17 a second, 90 times the data set's average rate (1,000,000 entries
# over 60 days); `rollup_tail_reads` measures the reads with longer tails too.
ROLLUP_TAIL_ENTRIES = 2_000
TAIL_SENSITIVITY = (0, 2_000, 12_000, 50_000)


def fold_rollups(*, tail: int) -> dict[str, Any]:
    """Fold the whole ledger into the spend rollups again but its newest `tail`
    entries, timed (what a first fold of such a ledger takes)."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from ledger.models import DaySpend, LedgerEntry, SpendRollupMark, TraceMonthSpend
    from ledger.services.rollups import spend_rollups_rebuild

    harness.log(f"spend rollups: the ledger but its newest {tail:,} entries")
    newest = LedgerEntry.objects.order_by("-id").values_list("created_at", flat=True)
    # Folded up to the posting time of the entry `tail` from the end (grace 0): a few
    # more when entries share it, as a capture and its release do.
    until = newest[tail] if tail else timezone.now()
    started = time.monotonic()
    # A rebuild never moves the mark back (readers rely on it), so the bench, with no
    # reader running, resets it to measure a shorter fold than the last.
    SpendRollupMark.objects.update(last_entry_id=0)
    spend_rollups_rebuild(now=until, grace=timedelta(0))
    seconds = round(time.monotonic() - started, 2)
    # As autovacuum soon would after such a write (VACUUM outside a transaction only).
    vacuum = "ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE"
    with connection.cursor() as cursor:
        cursor.execute(f"{vacuum} ledger_dayspend, ledger_tracemonthspend")
    mark = SpendRollupMark.objects.get().last_entry_id
    return {
        "fold_s": seconds,
        "day_rows": DaySpend.objects.count(),
        "trace_rows": TraceMonthSpend.objects.count(),
        "tail_entries": LedgerEntry.objects.filter(id__gt=mark).count(),
    }


def rollup_tail_reads(*, tails: tuple[int, ...], loads: int) -> list[dict[str, Any]]:
    """The three reads of the rollups with their tail, organisation-wide, with the mark
    moved back to leave `tail` entries after it (a rebuild each); p50 in ms. Run after
    the pages: it leaves the last tail in place (every run folds again first)."""
    from datetime import timedelta

    from django.utils import timezone

    from ledger.selectors import (
        day_vendor_spend_read,
        spend_totals_read,
        trace_month_spend_read,
    )

    now = timezone.now()
    today = now.date()
    reads = {
        "day by vendor, 30 days": lambda: day_vendor_spend_read(
            principal_ids=None, first_day=today - timedelta(days=29), last_day=today
        ),
        "traces this month": lambda: trace_month_spend_read(principal_ids=None, now=now),
        "totals": lambda: spend_totals_read(principal_ids=None),
    }
    rows = []
    for tail in tails:
        fold_rollups(tail=tail)
        row: dict[str, Any] = {"tail_entries": tail}
        for name, read in reads.items():
            read()
            times = []
            for _ in range(loads):
                started = time.perf_counter()
                read()
                times.append((time.perf_counter() - started) * 1000)
            row[name] = round(statistics.median(times), 1)
        rows.append(row)
        harness.log(f"  tail {tail:,}: {row}")
    return rows


def measure_page(client: Any, path: str, *, htmx: bool, loads: int, warmup: int) -> dict:
    """p50/p95/max of `loads` loads after `warmup` (fewer, at least MIN_LOADS, once they
    took PAGE_BUDGET_S: a page of seconds is a miss either way), and the queries of one
    more."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import Resolver404, resolve

    figures: dict[str, Any] = {"path": path, "htmx": htmx}
    headers = {"HX-Request": "true"} if htmx else {}
    try:
        resolve(urlsplit(path).path)
    except Resolver404:
        return figures | {"status": "missing"}
    except Exception as error:  # the URLconf itself fails to load (a half-made change)
        return figures | {"status": "error", "error": f"{type(error).__name__}: {error}"[:500]}
    try:
        for _ in range(max(warmup, 1)):
            _, status, size = _load(client, path, headers)
        if status != 200:
            return figures | {"status": status}
        took: list[float] = []
        while len(took) < loads and (len(took) < MIN_LOADS or sum(took) < PAGE_BUDGET_S):
            took.append(_load(client, path, headers)[0])
        with CaptureQueriesContext(connection) as queries:
            _load(client, path, headers)
    except Exception as error:  # a page being built may fail: report it, go on
        return figures | {"status": "error", "error": f"{type(error).__name__}: {error}"[:500]}
    ranked = sorted(queries.captured_queries, key=lambda query: -float(query["time"]))
    slowest = ranked[0] if ranked else None
    return figures | {
        "status": 200,
        "bytes": size,
        "loads": len(took),
        "latency": harness.summary(took),
        "queries": len(queries.captured_queries),
        "queries_ms": round(sum(float(q["time"]) for q in queries.captured_queries) * 1000, 1),
        "slowest_query": None
        if slowest is None
        else {"ms": round(float(slowest["time"]) * 1000, 1), "sql": slowest["sql"]},
        "next_slowest_queries": [
            {"ms": round(float(query["time"]) * 1000, 1), "sql": query["sql"][:2000]}
            for query in ranked[1:4]
        ],
    }


def signed_in_client(username: str) -> Any:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(SERVER_NAME="localhost")
    client.force_login(User.objects.get(username=username))
    return client


def measure_pages(username: str, *, loads: int, warmup: int) -> list[dict[str, Any]]:
    client = signed_in_client(username)
    arguments = page_arguments(username=username)
    results = []
    for template, has_fragment in PAGES:
        path = template.format(**arguments)
        for htmx in (False, True) if has_fragment else (False,):
            figures = measure_page(client, path, htmx=htmx, loads=loads, warmup=warmup)
            figures["page"] = template
            figures["user"] = username
            results.append(figures)
            latency = figures.get("latency", {})
            harness.log(
                f"  {username} {path}{' (htmx)' if htmx else ''}: {figures['status']}"
                + (f", p95 {latency['p95_ms']} ms" if latency else "")
            )
    return results


def _rss() -> int:
    return psutil.Process().memory_info().rss


def measure_export(username: str, *, mark: int = 100_000) -> dict[str, Any]:
    """Stream the CSV of every entry to its end: wall time, rows, bytes, and how far the
    process's RSS grew above where it started, up to `mark` rows and up to the end."""
    client = signed_in_client(username)
    gc.collect()
    start_rss = peak = _rss()
    at_mark: dict[str, Any] = {}
    rows = size = 0
    started = time.perf_counter()
    response = client.get(EXPORT_PATH)
    first_byte = None
    sampled = 0
    for chunk in response.streaming_content:  # blocks of whole lines, the header first
        if first_byte is None:
            first_byte = time.perf_counter() - started
        size += len(chunk)
        rows += chunk.count(b"\n")  # no field holds a newline (ids, names, amounts)
        if rows - sampled >= 10_000:
            peak, sampled = max(peak, _rss()), rows
        if not at_mark and rows >= mark + 1:
            at_mark = {
                "rows": mark,
                "seconds": round(time.perf_counter() - started, 2),
                "rss_growth_mb": round((peak - start_rss) / 2**20, 1),
            }
    response.close()
    seconds = time.perf_counter() - started
    peak = max(peak, _rss())
    growth = round((peak - start_rss) / 2**20, 1)
    return {
        "path": EXPORT_PATH,
        "user": username,
        "status": response.status_code,
        "rows": rows - 1,
        "bytes": size,
        "seconds": round(seconds, 2),
        "rows_per_s": round((rows - 1) / seconds),
        "first_byte_ms": round((first_byte or 0) * 1000, 1),
        "start_rss_mb": round(start_rss / 2**20, 1),
        "rss_growth_mb": growth,
        "at_mark": at_mark,
        "rss_growth_after_mark_mb": round(growth - at_mark.get("rss_growth_mb", 0), 1),
    }


def explain(sql: str) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of a page's slowest query."""
    from django.db import connection

    if not sql.lstrip().upper().startswith(("SELECT", "WITH")):
        return []
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return [line for (line,) in cursor.fetchall()]


# --- Report ----------------------------------------------------------------------------


def report(pages: list[dict[str, Any]], export: dict[str, Any] | None) -> tuple[str, dict]:
    target = TARGETS["page_p95_ms_below"]
    lines = []
    for user in (SUPERUSER, LEAD):
        rows = []
        for page in (p for p in pages if p["user"] == user):
            latency = page.get("latency")
            verdict = ""
            if latency:
                verdict = "PASS" if latency["p95_ms"] < target else "MISS"
            rows.append(
                (
                    page["path"][:60] + (" [htmx]" if page["htmx"] else ""),
                    page["status"],
                    page.get("loads", ""),
                    latency["p50_ms"] if latency else "",
                    latency["p95_ms"] if latency else "",
                    latency["max_ms"] if latency else "",
                    page.get("queries", ""),
                    page["slowest_query"]["ms"] if page.get("slowest_query") else "",
                    verdict,
                )
            )
        lines.append(f"signed in as {user}:")
        lines.append(
            harness.table(
                [
                    "page",
                    "status",
                    "loads",
                    "p50 ms",
                    "p95 ms",
                    "max ms",
                    "queries",
                    "slowest q ms",
                    "",
                ],
                rows,
            )
        )
        lines.append("")
    measured = [p for p in pages if p.get("latency")]
    misses = [p for p in measured if p["latency"]["p95_ms"] >= target]
    missing = sorted({p["page"] for p in pages if p["status"] == "missing"})
    failing = [p for p in pages if p["status"] not in (200, "missing")]
    verdicts: dict[str, Any] = {
        "pages_p95": {
            "pass": not misses and not failing,
            "figure": f"{len(measured) - len(misses)} of {len(measured)} under {target} ms"
            + (f"; worst {max(p['latency']['p95_ms'] for p in measured)} ms" if measured else ""),
            "misses": [f"{p['user']} {p['path']}{' [htmx]' if p['htmx'] else ''}" for p in misses],
            "failing": [f"{p['user']} {p['path']}: {p['status']}" for p in failing],
            "missing": missing,
        }
    }
    if export is not None:
        flat = (
            export["rss_growth_after_mark_mb"]
            < TARGETS["export_rss_growth_after_first_tenth_mb_below"]
        )
        verdicts["export_seconds"] = {
            "pass": export["status"] == 200 and export["seconds"] < TARGETS["export_seconds_below"],
            "figure": f"{export['rows']:,} rows, {export['bytes'] / 2**20:.0f} MB in"
            f" {export['seconds']} s ({export['rows_per_s']:,} rows/s)",
        }
        verdicts["export_memory_flat"] = {
            "pass": flat,
            "figure": f"RSS +{export['at_mark'].get('rss_growth_mb')} MB at"
            f" {export['at_mark'].get('rows', 0):,} rows,"
            f" +{export['rss_growth_mb']} MB at {export['rows']:,}",
        }
    for name, verdict in verdicts.items():
        lines.append(f"{'PASS' if verdict['pass'] else 'MISS'}  {name}: {verdict['figure']}")
    if missing:
        lines.append(f"missing (not routed yet): {', '.join(missing)}")
    for page in failing:
        lines.append(
            f"failing: {page['user']} {page['path']}: {page['status']} {page.get('error', '')}"
        )
    for page in misses:
        slowest = page.get("slowest_query") or {}
        lines.append("")
        lines.append(
            f"{page['user']} {page['path']}{' [htmx]' if page['htmx'] else ''}: p95"
            f" {page['latency']['p95_ms']} ms, {page['queries']} queries"
            f" ({page['queries_ms']} ms); slowest {slowest.get('ms')} ms:"
        )
        lines.append(f"  {slowest.get('sql', '')[:400]}")
        lines += [f"    {line}" for line in page.get("plan", [])[:14]]
    return "\n".join(lines), verdicts


def main() -> int:
    parser = harness.common_arguments(__doc__.splitlines()[0], "portal.json")
    default_url = harness.DEFAULT_POSTGRES_URL.rsplit("/", 1)[0] + f"/{DEFAULT_DATABASE}"
    parser.set_defaults(postgres_url=default_url)
    parser.add_argument("--loads", type=int, default=30, help="timed loads per page")
    parser.add_argument("--warmup", type=int, default=3, help="untimed loads first")
    parser.add_argument("--rebuild", action="store_true", help="build the data set again")
    parser.add_argument("--no-export", action="store_true", help="skip the CSV export")
    args = parser.parse_args()
    output = args.output.resolve()  # the harness moves to --code
    sizes = QUICK if args.quick else FULL
    url = args.postgres_url
    if args.quick and url == default_url:
        url += "_quick"  # never the full data set's cache
    loads = 10 if args.quick else args.loads
    started = time.monotonic()
    code = args.code.resolve()
    harness.django_setup(code, url)
    build_info = ensure_data(url, sizes, rebuild=args.rebuild)
    harness.settle(url)

    import time_machine
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    # On the bench's clock, as just after the build; the static files' manifest as
    # production serves it (DEBUG off). The export first, while this process's heap is
    # fresh, so its RSS shows what streaming it takes.
    with (
        time_machine.travel(datetime.fromisoformat(build_info["built_at"]), tick=True),
        tempfile.TemporaryDirectory(prefix="bench-static-") as static_root,
        override_settings(STATIC_ROOT=static_root),
    ):
        harness.log("on the bench's clock from here (the log's times too)")
        if not settings.DEBUG:
            call_command("collectstatic", interactive=False, verbosity=0)
        rollups = fold_rollups(tail=min(ROLLUP_TAIL_ENTRIES, sizes.entries // 10))
        export = None
        if not args.no_export:
            harness.log(f"{EXPORT_PATH}, every entry")
            export = measure_export(SUPERUSER, mark=sizes.entries // 10)
        # As gunicorn's workers serve (agentwallet/wsgi.py freezes what is loaded before
        # the first request): without it a full collection scans this process's whole
        # heap once in ten loads, 110 ms on the dashboard, and p95 measures that.
        gc.collect()
        gc.freeze()
        pages = []
        for user in (SUPERUSER, LEAD):
            harness.log(f"pages as {user}, {loads} loads each")
            pages += measure_pages(user, loads=loads, warmup=args.warmup)
        harness.log("the rollups' reads by the length of their tail")
        tails = [tail for tail in TAIL_SENSITIVITY if tail < sizes.entries // 10]
        rollups["tail_reads"] = rollup_tail_reads(tails=tuple(tails), loads=loads)
    for page in pages:
        latency = page.get("latency")
        if latency and latency["p95_ms"] >= TARGETS["page_p95_ms_below"] and page["slowest_query"]:
            page["plan"] = explain(page["slowest_query"]["sql"])
    text, verdicts = report(pages, export)
    print(text)
    print(
        f"spend rollups: the ledger folded in {rollups['fold_s']} s "
        f"({rollups['day_rows']:,} day rows, {rollups['trace_rows']:,} trace-month rows); "
        f"{rollups['tail_entries']:,} entries left in the tail"
    )
    print("the rollups' reads (organisation-wide, p50 ms) by the entries after the mark:")
    print(
        harness.table(
            ["tail entries", *[k for k in rollups["tail_reads"][0] if k != "tail_entries"]],
            [tuple(row.values()) for row in rollups["tail_reads"]],
        )
    )
    harness.write_json(
        output,
        {
            "benchmark": "portal",
            "targets": TARGETS,
            "quick": args.quick,
            "sizes": asdict(sizes),
            "loads": loads,
            "warmup": args.warmup,
            "machine": harness.machine_info(code),
            "elapsed_s": round(time.monotonic() - started, 1),
            "build": build_info,
            "verdicts": verdicts,
            "result": {"pages": pages, "export": export, "rollups": rollups},
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
