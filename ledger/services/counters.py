"""The spend counters are derived from the ledger: rebuilt from it, checked against it,
cut again when a policy's time zone moves its months, pruned once no window reads them.

Whatever rewrites counters holds the locks decisions take first (the agent rows), so no
decision or posting writes them meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ledger import sql
from ledger.models import CounterGrain, EntryKind, LedgerEntry, MonthCounterZone, SpendCounter
from ledger.selectors import agent_spend_now
from policies.models import Policy
from wallets.models import Agent
from wallets.selectors import agent_lock

# Minute and hour buckets older than this serve no window and may be pruned.
FINE_BUCKET_RETENTION = timedelta(hours=26)
CHUNK = 2000


def counters_rebuild() -> int:
    """Recompute every counter from the ledger, the source of truth, in one transaction
    that holds every agent's lock (decisions wait meanwhile). Returns the rows written."""
    with transaction.atomic():
        agents = {agent.pk: agent for agent in _lock_all_agents()}
        SpendCounter.objects.all().delete()
        MonthCounterZone.objects.all().delete()  # every month is cut in its policy's zone
        with connection.cursor() as cursor:
            for chunk in _chunks(LedgerEntry.objects.order_by("id").iterator(CHUNK)):
                sql.counters_add(
                    cursor,
                    (_posting(entry, agents[entry.agent_id].policy, trace=True) for entry in chunk),
                )
        return SpendCounter.objects.count()


@dataclass(frozen=True)
class CounterMismatch:
    agent_id: uuid.UUID
    counted: sql.Spend  # what the counters said
    rebuilt: sql.Spend  # what the ledger says


def counters_check() -> list[CounterMismatch]:
    """Every agent's spend as decisions read it now, from the counters and again after a
    rebuild from the ledger; the rebuild is rolled back. Returns the agents that differ."""
    with transaction.atomic():
        agents = list(_lock_all_agents())
        now = timezone.now()
        counted = {agent.pk: agent_spend_now(agent=agent, now=now) for agent in agents}
        counters_rebuild()
        mismatches = [
            CounterMismatch(agent.pk, counted[agent.pk], rebuilt)
            for agent in agents
            if (rebuilt := agent_spend_now(agent=agent, now=now)) != counted[agent.pk]
        ]
        transaction.set_rollback(True)
    return mismatches


def month_counter_zones_keep(*, policy: Policy, time_zone: str, now: datetime) -> None:
    """The policy's zone changes from `time_zone`, in the caller's transaction: its
    agents keep counting months in `time_zone` until their month counters are recut
    (`month_counters_recut`), so no decision reads months cut in another zone. An agent
    that still waits for an earlier recut keeps the zone its counters are cut in."""
    MonthCounterZone.objects.bulk_create(
        [
            MonthCounterZone(agent_id=agent_id, time_zone=time_zone, since=now)
            for agent_id in Agent.objects.filter(policy=policy).values_list("pk", flat=True)
        ],
        ignore_conflicts=True,
    )


def month_counters_recut(*, agent_id: uuid.UUID) -> bool:
    """Cut the agent's month counters again from the ledger, in its policy's zone, under
    its lock, then let its decisions count months in that zone. Traces, minutes and hours
    do not depend on the zone. Returns False when there was nothing to recut."""
    with transaction.atomic(durable=True):
        agent = agent_lock(agent_id=agent_id)
        if not MonthCounterZone.objects.filter(agent_id=agent_id).exists():
            return False
        own_months = (
            Q(scope=sql.agent_scope(agent_id))
            | Q(
                scope__in=[
                    sql.card_scope(card_id) for card_id in agent.cards.values_list("pk", flat=True)
                ]
            )
            | Q(scope__startswith=sql.vendor_scope(agent_id, ""))
        )
        SpendCounter.objects.filter(own_months, grain=CounterGrain.MONTH).delete()
        entries = LedgerEntry.objects.filter(agent_id=agent_id).order_by("id").iterator(CHUNK)
        with connection.cursor() as cursor:
            for chunk in _chunks(entries):
                sql.counters_add(
                    cursor,
                    (_posting(entry, agent.policy, trace=False) for entry in chunk),
                    grains=[CounterGrain.MONTH.value],
                )
        MonthCounterZone.objects.filter(agent_id=agent_id).delete()
        return True


def month_counters_recut_pending(*, limit: int = 500) -> int:
    """Recut every agent still waiting for it (at most `limit`). Returns how many."""
    waiting = MonthCounterZone.objects.values_list("agent_id", flat=True)[:limit]
    return sum(month_counters_recut(agent_id=agent_id) for agent_id in list(waiting))


def counters_prune(*, now: datetime) -> int:
    """Drop minute and hour buckets no rolling window reads any more."""
    cutoff = now - FINE_BUCKET_RETENTION
    deleted, _ = SpendCounter.objects.filter(
        grain__in=[CounterGrain.MINUTE, CounterGrain.HOUR], bucket_start__lt=cutoff
    ).delete()
    return deleted


def _lock_all_agents() -> Iterable[Agent]:
    """Every agent's row, locked in id order (decisions lock one agent, then a trace)."""
    return Agent.objects.select_for_update(of=("self",)).select_related("policy").order_by("pk")


def _posting(entry: LedgerEntry, policy: Policy, *, trace: bool) -> sql.Posting:
    return sql.Posting(
        agent_id=entry.agent_id,
        card_id=entry.card_id,
        vendor_id=entry.vendor_id,
        trace_id=entry.trace_id if trace else "",
        currency=str(entry.cap_amount.currency),
        month_time_zone=policy.time_zone,
        effective_at=entry.effective_at,
        cents=entry.cap_cents,
        is_hold=entry.kind == EntryKind.HOLD,
    )


def _chunks(entries: Iterator[LedgerEntry]) -> Iterator[list[LedgerEntry]]:
    chunk: list[LedgerEntry] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
