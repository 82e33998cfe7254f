"""Runaways: an agent or a trace whose spend in the last hour is far above its own usual
busy hour. The sweep (beat, every minute) reads the last hour of the ledger (by its
posting-time index: a few thousand entries at most) and, for the few above the floor, the
hours they spent in over the 7 days before: off the decision path, which it never slows.

A subject is flagged once per clock hour (`Runaway`, unique per subject and hour): Slack
hears through the outbox, naming the rate, the baseline and the cards, and an agent
whose policy says `runaway: freeze` has its cards frozen by the kill switch, with the
figures as the reason."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median_high

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from agentwallet.lib.money import cents_json, from_cents, to_cents
from agentwallet.lib.timewindows import HOUR, floor_to
from approvals.models import OutboxKind
from approvals.outbox import outbox_add
from approvals.services import channel_for
from cards.models import Card
from cards.services import agent_cards_freeze
from ledger import sql
from ledger.models import LedgerEntry, Runaway, RunawaySubject
from policies.models import RunawayAction
from wallets.actors import Actor
from wallets.models import Agent

logger = logging.getLogger(__name__)

RATE_WINDOW = timedelta(hours=1)
BASELINE_DAYS = 7


@dataclass(frozen=True)
class _Rate:
    subject: str  # RunawaySubject
    key: object  # the agent's id, or the trace id
    currency: str
    cents: int


def runaways_sweep(*, now: datetime | None = None) -> list[Runaway]:
    """Flag (and act on) every subject running away now; returns the new flags."""
    now = now or timezone.now()
    since = now - RATE_WINDOW
    recent = LedgerEntry.objects.filter(created_at__gt=since, created_at__lte=now)
    floor = to_cents(settings.AGENTWALLET_RUNAWAY_FLOOR)
    rates = [
        _Rate(RunawaySubject.AGENT, agent_id, currency, int(cents))
        for agent_id, currency, cents in recent.values_list("agent_id", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"))
        .order_by()
        if cents >= floor
    ] + [
        _Rate(RunawaySubject.TRACE, trace_id, currency, int(cents))
        for trace_id, currency, cents in recent.exclude(trace_id="")
        .values_list("trace_id", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"))
        .order_by()
        if cents >= floor
    ]
    baselines = _baselines(rates, since)
    factor = settings.AGENTWALLET_RUNAWAY_FACTOR
    flagged = []
    for rate in rates:
        baseline = baselines.get((rate.subject, rate.key, rate.currency), 0)
        if rate.cents >= factor * baseline:
            runaway = _flag(rate, baseline, since=since, now=now)
            if runaway is not None:
                flagged.append(runaway)
    return flagged


def _baselines(rates: list[_Rate], until: datetime) -> dict[tuple, int]:
    """Each candidate's median busy hour (the higher middle of its hourly spend, over the
    hours it spent in) in the 7 days before the last hour."""
    hours: dict[tuple, list[int]] = defaultdict(list)
    earlier = LedgerEntry.objects.filter(
        created_at__gte=until - timedelta(days=BASELINE_DAYS), created_at__lte=until
    ).annotate(hour=TruncHour("created_at"))
    for subject, field in ((RunawaySubject.AGENT, "agent_id"), (RunawaySubject.TRACE, "trace_id")):
        keys = {rate.key for rate in rates if rate.subject == subject}
        if not keys:
            continue
        for key, currency, _, cents in (
            earlier.filter(**{f"{field}__in": keys})
            .values_list(field, "cap_amount_currency", "hour")
            .annotate(cents=Sum("cap_cents"))
            .order_by()
        ):
            if cents > 0:
                hours[(subject, key, currency)].append(int(cents))
    return {key: median_high(values) for key, values in hours.items()}


def _flag(rate: _Rate, baseline: int, *, since: datetime, now: datetime) -> Runaway | None:
    """One subject's flag, its freezes and its Slack message, in one transaction; None
    when this hour's flag exists already."""
    if rate.subject == RunawaySubject.AGENT:
        subject_key = sql.agent_scope(rate.key)
        entries = LedgerEntry.objects.filter(agent_id=rate.key)
    else:
        subject_key = sql.trace_scope(rate.currency, rate.key)
        entries = LedgerEntry.objects.filter(trace_id=rate.key)
    hour_start = floor_to(now, HOUR)
    if Runaway.objects.filter(subject_key=subject_key, hour_start=hour_start).exists():
        return None
    spent = entries.filter(
        created_at__gt=since, created_at__lte=now, cap_amount_currency=rate.currency
    )
    agents = list(
        Agent.objects.filter(pk__in=spent.values("agent_id"))
        .select_related("policy")
        .order_by("name")
    )
    cards = list(
        Card.objects.filter(pk__in=spent.exclude(card=None).values("card_id"))
        .select_related("agent", "vendor")
        .order_by("agent__name", "vendor__name")
    )
    cur = rate.currency
    what = f"trace {rate.key}" if rate.subject == RunawaySubject.TRACE else "its cards"
    reason = (
        f"Runaway: {from_cents(rate.cents)} {cur} in the last hour on {what}, against a "
        f"usual busy hour of {from_cents(baseline)} {cur} (7 days)"
    )
    try:
        with transaction.atomic():
            runaway = Runaway.objects.create(
                subject=rate.subject,
                subject_key=subject_key,
                trace_id=rate.key if rate.subject == RunawaySubject.TRACE else "",
                currency=cur,
                hour_start=hour_start,
                rate_cents=rate.cents,
                baseline_cents=baseline,
                cards=[
                    {
                        "id": str(card.pk),
                        "last4": card.last4,
                        "vendor": card.vendor.name if card.vendor else "",
                        "agent": card.agent.name,
                    }
                    for card in cards
                ],
                detected_at=now,
            )
            runaway.agents.set(agents)
            stopping = [agent for agent in agents if agent.policy.runaway == RunawayAction.FREEZE]
            frozen = [
                agent.name
                for agent in stopping
                if agent_cards_freeze(agent=agent, actor=Actor.system("runaway"), reason=reason)
            ]
            if frozen:
                runaway.frozen = frozen
                runaway.save(update_fields=["frozen"])
            outbox_add(
                kind=OutboxKind.RUNAWAY,
                key=f"runaway:{subject_key}:{hour_start.isoformat()}",
                channel=channel_for(agents[0].policy)
                if agents
                else settings.SLACK_APPROVALS_CHANNEL,
                now=now,
                agent=agents[0] if rate.subject == RunawaySubject.AGENT and agents else None,
                payload=runaway_payload(
                    runaway,
                    agents,
                    already_frozen=[a.name for a in stopping if a.name not in frozen],
                ),
            )
    except IntegrityError:  # another sweep flagged it this hour, just now
        return None
    logger.warning("%s (%s)", reason, subject_key)
    return runaway


def runaway_payload(
    runaway: Runaway, agents: list[Agent], *, already_frozen: list[str]
) -> dict[str, object]:
    """What the Slack message says (approvals.slack.blocks.runaway_blocks); agents whose
    policy freezes but had no active card left are `already_frozen`."""
    return {
        "subject": runaway.subject,
        "trace_id": runaway.trace_id,
        "agents": [agent.name for agent in agents],
        "rate": cents_json(runaway.rate_cents, runaway.currency),
        "baseline": cents_json(runaway.baseline_cents, runaway.currency),
        "cards": runaway.cards,
        "frozen": runaway.frozen,
        "already_frozen": already_frozen,
        "hour_start": runaway.hour_start.isoformat(),
    }
