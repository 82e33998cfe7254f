"""Spend the slow way: plain sums over the ledger, the source of truth the counters are
held to. Live windows have no upper bound (see ledger.sql.spend_read)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Q, Sum

from agentwallet.lib.timewindows import month_bounds
from ledger.models import LedgerEntry
from ledger.sql import Spend


def spend_from_ledger(
    *,
    agent_id: object,
    month_time_zone: str,
    now: datetime,
    card_ids: Sequence[object] = (),
    vendor_ids: Sequence[int] = (),
    trace_ids: Sequence[str] = (),
) -> Spend:
    entries = LedgerEntry.objects.filter(agent_id=agent_id)
    start, end = (bound.astimezone(UTC) for bound in month_bounds(now, month_time_zone))
    month = entries.filter(effective_at__gte=start, effective_at__lt=end)

    def total(queryset) -> int:
        return queryset.aggregate(total=Sum("cap_cents"))["total"] or 0

    return Spend(
        day_cents=total(entries.filter(effective_at__gte=now - timedelta(hours=24))),
        month_cents=total(month),
        holds_last_hour=entries.aggregate(
            n=Count("id", filter=Q(kind="hold", effective_at__gte=now - timedelta(hours=1)))
        )["n"],
        card_month_cents={card_id: total(month.filter(card_id=card_id)) for card_id in card_ids},
        vendor_month_cents={
            vendor_id: total(month.filter(vendor_id=vendor_id)) for vendor_id in vendor_ids
        },
        # A trace's budget spans every agent that spent on it.
        trace_cents={
            trace: total(LedgerEntry.objects.filter(trace_id=trace)) for trace in trace_ids
        },
    )
