"""Several weeks of realistic demo spend, driven through the real decision engine.

Charges are decided by `authorization_decide` at their (past) times, then captured,
reversed or refunded like a processor would, so the ledger, counters, declines and
approval requests are all genuine. Deterministic (seeded), so reruns are identical.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from cards.models import Card
from ledger.models import Authorization
from ledger.services import (
    AuthorizationRequest,
    authorization_capture,
    authorization_decide,
    authorization_reverse,
    holds_expire,
    refund_record,
)
from wallets.models import Agent

DAYS = 28


@dataclass(frozen=True)
class Pattern:
    vendor: str
    per_day: tuple[int, int]
    amount: tuple[str, str]
    currency: str = "USD"
    merchant: str = ""


PATTERNS: dict[str, list[Pattern]] = {
    "claude-code-main": [
        Pattern("anthropic", (3, 8), ("0.40", "18.00"), merchant="ANTHROPIC"),
        Pattern("openai", (1, 4), ("0.20", "9.00"), merchant="OPENAI *API"),
        Pattern("aws", (0, 2), ("3.00", "60.00"), merchant="AMAZON WEB SERVICES"),
        Pattern("vercel", (0, 1), ("5.00", "20.00"), merchant="VERCEL INC."),
    ],
    "codex-refactor": [
        Pattern("openai", (2, 6), ("0.30", "12.00"), merchant="OPENAI *API"),
        Pattern("github", (0, 1), ("4.00", "21.00"), merchant="GITHUB, INC."),
        Pattern("snowflake", (0, 1), ("2.00", "30.00"), merchant="SNOWFLAKE INC"),
    ],
    "ci-runner": [
        Pattern("openai", (4, 10), ("0.05", "1.20"), merchant="OPENAI *API"),
        Pattern("github", (0, 2), ("0.50", "4.00"), merchant="GITHUB, INC."),
    ],
    "deploy-bot": [
        Pattern("hetzner", (0, 2), ("4.50", "49.00"), currency="EUR", merchant="HETZNER ONLINE"),
        Pattern("ovh", (0, 1), ("3.00", "25.00"), currency="EUR", merchant="OVH SAS"),
        Pattern("github", (0, 1), ("4.00", "12.00"), currency="USD", merchant="GITHUB, INC."),
    ],
}

RUNAWAY_AGENT = "codex-refactor"
RUNAWAY_TRACE = "PR-4823"


def _amount(rng: random.Random, low: str, high: str) -> Decimal:
    cents = rng.randint(int(Decimal(low) * 100), int(Decimal(high) * 100))
    return Decimal(cents) / 100


def seed_demo_spend(*, now: datetime | None = None, seed: int = 2026) -> int:
    """Generate the spend; returns how many authorizations were decided."""
    now = now or timezone.now()
    rng = random.Random(seed)  # noqa: S311 (demo data, reproducible on purpose)
    agents = {agent.name: agent for agent in Agent.objects.filter(name__in=PATTERNS)}
    charges: list[tuple[datetime, Agent, Card, Pattern, str]] = []
    for name, patterns in PATTERNS.items():
        agent = agents.get(name)
        if agent is None:
            continue
        cards = {
            card.vendor.slug: card
            for card in Card.objects.filter(agent=agent, is_ephemeral=False).select_related(
                "vendor"
            )
        }
        # Each agent works on its own PRs, a handful a day; some spend is unattributed.
        base = 4000 + 1000 * list(PATTERNS).index(name)
        for day in range(DAYS, 0, -1):
            prs = [f"PR-{base + 6 * (DAYS - day) + slot}" for slot in range(6)]
            for pattern in patterns:
                card = cards.get(pattern.vendor)
                if card is None:
                    continue
                for _ in range(rng.randint(*pattern.per_day)):
                    at = now - timedelta(days=day, minutes=rng.randint(0, 24 * 60 - 1))
                    trace = rng.choice(prs) if rng.random() < 0.75 else ""
                    charges.append((at, agent, card, pattern, trace))
    # The runaway PR: three days ago an agent loops on small calls until the trace cap.
    runaway = agents.get(RUNAWAY_AGENT)
    if runaway is not None:
        card = Card.objects.get(agent=runaway, vendor__slug="openai", is_ephemeral=False)
        start = now - timedelta(days=3, hours=5)
        for i in range(14):
            charges.append(
                (
                    start + timedelta(minutes=4 * i),
                    runaway,
                    card,
                    Pattern("openai", (1, 1), ("2.20", "3.40"), merchant="OPENAI *API"),
                    RUNAWAY_TRACE,
                )
            )
    charges.sort(key=lambda item: item[0])

    followups: list[tuple[datetime, str, str, Decimal, str]] = []
    decided = 0
    for index, (at, _agent, card, pattern, trace) in enumerate(charges):
        amount = _amount(rng, *pattern.amount)
        auth = authorization_decide(
            request=AuthorizationRequest(
                network_id=f"demo_{seed}_{index}",
                card_id=str(card.pk),
                amount=amount,
                currency=pattern.currency,
                merchant_mcc=card.allowed_mccs[0],
                merchant_name=pattern.merchant or card.vendor.name,
                trace_id=trace,
                merchant_country="DE" if pattern.currency == "EUR" else "US",
            ),
            now=at,
        ).authorization
        decided += 1
        if auth.decision != "approved":
            continue
        roll = rng.random()
        later = at + timedelta(minutes=rng.randint(20, 600))
        if roll < 0.80:
            followups.append((later, "capture", auth.network_id, amount, pattern.currency))
        elif roll < 0.85:  # a tip or FX drift: the capture is a little higher
            followups.append(
                (later, "capture", auth.network_id, amount + Decimal("0.37"), pattern.currency)
            )
        elif roll < 0.95:
            followups.append((later, "reverse", auth.network_id, amount, pattern.currency))
        if roll < 0.03:
            followups.append(
                (
                    later + timedelta(days=2),
                    "refund",
                    auth.network_id,
                    (amount / 2).quantize(Decimal("0.01")),
                    pattern.currency,
                )
            )

    for at, action, network_id, amount, currency in sorted(followups, key=lambda f: f[0]):
        if at > now:
            continue
        if action == "capture":
            authorization_capture(
                network_id=network_id,
                amount=amount,
                currency=currency,
                network_txn_id=f"{network_id}_cap",
                now=at,
            )
        elif action == "reverse":
            authorization_reverse(network_id=network_id, now=at)
        else:
            card_id = Authorization.objects.values_list("card_id", flat=True).get(
                network_id=network_id
            )
            refund_record(
                card_id=str(card_id),
                amount=amount,
                currency=currency,
                network_txn_id=f"{network_id}_refund",
                authorization_network_id=network_id,
                now=at,
            )
    holds_expire(now=now)
    return decided
