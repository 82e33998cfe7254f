"""Sprint reports: one sprint's spend by trace and vendor, by agent, its top traces and how
concentrated the spend was, what no trace claimed, the declines by reason, the approvals
asked and granted and the caps they bumped, and the runaways. Built from the ledger by
`effective_at` (as the portal's pages count), stored one row per sprint and rebuilt in
place; beat builds the last sprint's once it has ended and tells Slack (once per sprint)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone
from djmoney.money import Money

from agentwallet.lib.money import cents_json, money_json
from approvals.models import ApprovalRequest, ApprovalStatus, CapBump, OutboxKind
from approvals.outbox import outbox_add
from ledger.models import (
    Authorization,
    Decision,
    LedgerEntry,
    Runaway,
    SprintCalendar,
    SprintReport,
)

TOP_TRACES = 10
CONCENTRATION_SHARE = Decimal("0.05")  # the top 5% of traces


def sprint_calendar() -> SprintCalendar:
    calendar, _ = SprintCalendar.objects.get_or_create(pk=1)
    return calendar


def sprint_first_day(calendar: SprintCalendar, day: date) -> date:
    """The first day of the sprint that `day` (a local date) falls in."""
    offset = (day - calendar.first_day).days // calendar.length_days
    return calendar.first_day + timedelta(days=offset * calendar.length_days)


def sprint_bounds(calendar: SprintCalendar, first_day: date) -> tuple[datetime, datetime]:
    """The sprint's start and end, local midnights in the calendar's zone."""
    zone = ZoneInfo(calendar.time_zone)
    last = first_day + timedelta(days=calendar.length_days)
    return (
        datetime.combine(first_day, time.min, tzinfo=zone),
        datetime.combine(last, time.min, tzinfo=zone),
    )


def sprint_current_first_day(calendar: SprintCalendar, now: datetime) -> date:
    return sprint_first_day(calendar, now.astimezone(ZoneInfo(calendar.time_zone)).date())


def sprint_report_build(*, first_day: date, now: datetime | None = None) -> SprintReport:
    """Build (or rebuild in place) the report of the sprint `first_day` falls in; a
    sprint that has not ended is reported so far. Slack hears of an ended sprint's report
    once."""
    now = now or timezone.now()
    calendar = sprint_calendar()
    first_day = sprint_first_day(calendar, first_day)  # any day of it: the sprint's first
    starts_at, ends_at = sprint_bounds(calendar, first_day)
    until = min(ends_at, now)
    figures = _figures(starts_at, until)
    figures["complete"] = now >= ends_at
    with transaction.atomic():
        report, _ = SprintReport.objects.update_or_create(
            first_day=first_day,
            defaults={
                "starts_at": starts_at,
                "ends_at": ends_at,
                "built_at": now,
                "figures": figures,
            },
        )
        if figures["complete"]:
            outbox_add(
                kind=OutboxKind.SPRINT_REPORT,
                key=f"sprint-report:{first_day.isoformat()}",
                channel=settings.SLACK_APPROVALS_CHANNEL,
                now=now,
                payload=sprint_report_summary(report),
            )
    return report


def sprint_reports_due(*, now: datetime | None = None) -> SprintReport | None:
    """Beat: the last ended sprint's report, built when it has none from after its end."""
    now = now or timezone.now()
    calendar = sprint_calendar()
    current = sprint_current_first_day(calendar, now)
    last = current - timedelta(days=calendar.length_days)
    if last < calendar.first_day:
        return None
    _, ends_at = sprint_bounds(calendar, last)
    if SprintReport.objects.filter(first_day=last, built_at__gte=ends_at).exists():
        return None
    return sprint_report_build(first_day=last, now=now)


def _figures(starts_at: datetime, until: datetime) -> dict[str, Any]:
    entries = LedgerEntry.objects.filter(effective_at__gte=starts_at, effective_at__lt=until)
    by_trace_vendor: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_trace: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for trace_id, vendor, currency, cents in (
        entries.values_list("trace_id", "vendor__slug", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"))
        .order_by("cap_amount_currency", "-cents", "trace_id", "vendor__slug")
    ):
        by_trace_vendor[currency].append(
            {"trace_id": trace_id, "vendor": vendor or "", "spent": cents_json(cents, currency)}
        )
        by_trace[currency][trace_id] += int(cents)
    by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for agent_id, name, currency, cents in (
        entries.values_list("agent_id", "agent__name", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"))
        .order_by("cap_amount_currency", "-cents", "agent__name")
    ):
        by_agent[currency].append(
            {"agent_id": str(agent_id), "agent": name, "spent": cents_json(cents, currency)}
        )
    currencies = {}
    for currency in sorted(set(by_trace) | set(by_agent)):
        traces = by_trace[currency]
        total = sum(traces.values())
        ranked = sorted(
            ((trace, cents) for trace, cents in traces.items() if trace and cents > 0),
            key=lambda item: (-item[1], item[0]),
        )
        top_count = math.ceil(len(ranked) * CONCENTRATION_SHARE) if ranked else 0
        top_cents = sum(cents for _, cents in ranked[:top_count])
        currencies[currency] = {
            "spent": cents_json(total, currency),
            "unattributed": cents_json(traces.get("", 0), currency),
            "traces": len(ranked),
            "top_traces": [
                {"trace_id": trace, "spent": cents_json(cents, currency)}
                for trace, cents in ranked[:TOP_TRACES]
            ],
            # The share of the spend from the top 5% of traces (at least one).
            "concentration": {
                "top_traces": top_count,
                "share_percent": str(
                    (Decimal(top_cents) * 100 / total).quantize(Decimal("0.1")) if total > 0 else 0
                ),
            },
            "by_trace_vendor": by_trace_vendor[currency],
            "by_agent": by_agent[currency],
        }
    declines = dict(
        Authorization.objects.filter(
            decision=Decision.DECLINED, decided_at__gte=starts_at, decided_at__lt=until
        )
        .values_list("reason")
        .annotate(count=Count("id"))
        .order_by("reason")
    )
    asked = ApprovalRequest.objects.filter(created_at__gte=starts_at, created_at__lt=until)
    bumped: dict[str, Decimal] = defaultdict(Decimal)
    for amount, currency in CapBump.objects.filter(
        approval__in=asked, approval__status=ApprovalStatus.APPROVED
    ).values_list("amount", "amount_currency"):
        bumped[currency] += amount
    runaways = [
        {
            "subject": runaway.subject,
            "subject_key": runaway.subject_key,
            "trace_id": runaway.trace_id,
            "rate": cents_json(runaway.rate_cents, runaway.currency),
            "baseline": cents_json(runaway.baseline_cents, runaway.currency),
            "detected_at": runaway.detected_at.isoformat(),
            "frozen": runaway.frozen,
        }
        for runaway in Runaway.objects.filter(
            detected_at__gte=starts_at, detected_at__lt=until
        ).order_by("detected_at", "id")
    ]
    return {
        "currencies": currencies,
        "declines": declines,
        "approvals": {
            "asked": asked.count(),
            "granted": asked.filter(status=ApprovalStatus.APPROVED).count(),
            "bumped": [
                money_json(Money(amount, currency)) for currency, amount in sorted(bumped.items())
            ],
        },
        "runaways": runaways,
    }


def sprint_report_summary(report: SprintReport) -> dict[str, Any]:
    """What Slack hears (approvals.slack.blocks.sprint_report_blocks)."""
    figures = report.figures
    base = settings.AGENTWALLET_PORTAL_URL.rstrip("/")
    return {
        "first_day": report.first_day.isoformat(),
        "last_day": report.last_day.isoformat(),
        "url": f"{base}/reports/{report.pk}/",
        "currencies": {
            currency: {
                "spent": values["spent"],
                "unattributed": values["unattributed"],
                "concentration": values["concentration"],
                "top_traces": values["top_traces"][:3],
            }
            for currency, values in figures["currencies"].items()
        },
        "declines": sum(figures["declines"].values()),
        "approvals": figures["approvals"],
        "runaways": len(figures["runaways"]),
    }
