"""The portal's pages: parse, read through a selector, render. A page answers its full
template on a normal request and only the fragment that changes on an HTMX request."""

from __future__ import annotations

import csv
from datetime import date
from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from agentwallet.portal.filters import AuditEventFilter
from agentwallet.portal.htmx import render_page
from agentwallet.portal.selectors import (
    AUDIT_PAGE_SIZE,
    DASHBOARD_PANELS,
    audit_events,
    dashboard_read,
    keyset_page,
    portal_scope_required,
)
from ledger.models import IssuerReconciliation, ReconciliationMismatch, SprintReport
from ledger.services import reports as reports_service


@login_required
def dashboard(request) -> HttpResponse:
    scope = portal_scope_required(user=request.user)
    context = {"board": dashboard_read(scope=scope, now=timezone.now()), "scope": scope}
    if request.htmx:
        return render(request, "portal/_dashboard_panels.html", context)
    return render(request, "portal/dashboard.html", context)


@login_required
def dashboard_panel(request, panel: str) -> HttpResponse:
    """One of the dashboard's panels that load after it: the fragment the page swaps in,
    or, without JavaScript (its placeholder's link), the panel on a page of its own."""
    if panel not in DASHBOARD_PANELS:
        raise Http404("No such panel.")
    scope = portal_scope_required(user=request.user)
    read, name = DASHBOARD_PANELS[panel]
    now = timezone.now()
    fragment = f"portal/_dashboard_{panel}.html"
    context = {"panel_template": fragment, "as_of": now, "scope": scope}
    context[name] = read(scope=scope, now=now)
    return render_page(request, fragment, "portal/dashboard_panel.html", context)


@login_required
def audit(request) -> HttpResponse:
    scope = portal_scope_required(user=request.user)
    events = audit_events(scope=scope)
    filterset = AuditEventFilter(request.GET, queryset=events)
    events = filterset.qs if filterset.is_valid() else events.none()
    rows, next_before = keyset_page(
        events, before=request.GET.get("before", ""), size=AUDIT_PAGE_SIZE
    )
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "filter": filterset,
        "errors": filterset.errors,
        "rows": rows,
        "next_before": next_before,
        "query": query.urlencode(),
    }
    return render_page(request, "portal/_audit_rows.html", "portal/audit.html", context)


@login_required
def reports(request) -> HttpResponse:
    """The sprint reports, newest first; Finance builds one on demand (POST: the current
    sprint so far, or again the sprint of `first_day`). They cover the whole
    organisation, so a lead, whose scope is narrower, sees none."""
    scope = portal_scope_required(user=request.user)
    calendar = reports_service.sprint_calendar()
    if request.method == "POST":
        if not request.user.has_perm("ledger.add_sprintreport") or not scope.everything:
            raise PermissionDenied("Building a sprint report needs the Finance role.")
        first_day = reports_service.sprint_current_first_day(calendar, timezone.now())
        asked = request.POST.get("first_day", "")
        if asked:
            try:
                first_day = reports_service.sprint_first_day(calendar, date.fromisoformat(asked))
            except ValueError:
                return render(
                    request,
                    "portal/reports.html",
                    _reports_context(scope, calendar, error=f"{asked!r} is not a date."),
                    status=400,
                )
        report = reports_service.sprint_report_build(first_day=first_day)
        messages.success(request, f"Built the report of the sprint of {report.first_day}.")
        return redirect("portal-report", report_id=report.pk)
    return render(request, "portal/reports.html", _reports_context(scope, calendar))


def _reports_context(scope, calendar, *, error: str = "") -> dict:
    return {
        "reports": list(SprintReport.objects.all()[:52]) if scope.everything else [],
        "reconciliations": list(IssuerReconciliation.objects.all()[:31])
        if scope.everything
        else [],
        "scope": scope,
        "calendar": calendar,
        "error": error,
    }


def _report_for(request, report_id: int) -> SprintReport:
    scope = portal_scope_required(user=request.user)
    if not scope.everything or not request.user.has_perm("ledger.view_sprintreport"):
        raise Http404("No such report.")
    return get_object_or_404(SprintReport, pk=report_id)


@login_required
def report_detail(request, report_id: int) -> HttpResponse:
    report = _report_for(request, report_id)
    currencies = []
    for currency, figures in report.figures.get("currencies", {}).items():
        top = figures["top_traces"]
        largest = Decimal(top[0]["spent"]["amount"]) if top else Decimal(0)
        bars = [
            {**trace, "width": int(Decimal(trace["spent"]["amount"]) * 100 / largest)}
            for trace in top
            if largest > 0
        ]
        currencies.append({"currency": currency, **figures, "bars": bars})
    context = {"report": report, "currencies": currencies, "figures": report.figures}
    return render(request, "portal/report_detail.html", context)


@login_required
def reconciliation_detail(request, run_id: int) -> HttpResponse:
    """One day's reconciliation with the card issuer: every mismatch, by kind. It covers
    the whole organisation, as the sprint reports do (a lead sees none)."""
    scope = portal_scope_required(user=request.user)
    if not scope.everything or not request.user.has_perm("ledger.view_issuerreconciliation"):
        raise Http404("No such reconciliation.")
    run = get_object_or_404(IssuerReconciliation, pk=run_id)
    labels = dict(ReconciliationMismatch.choices)
    rows = [
        {**mismatch, "label": labels.get(mismatch["kind"], mismatch["kind"])}
        for mismatch in run.mismatches
    ]
    return render(request, "portal/reconciliation_detail.html", {"run": run, "rows": rows})


@login_required
def report_csv(request, report_id: int) -> HttpResponse:
    """The report's spend by trace and vendor, one row per (currency, trace, vendor)."""
    report = _report_for(request, report_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="sprint-{report.first_day.isoformat()}.csv"'
    )
    writer = csv.writer(response, lineterminator="\n")
    writer.writerow(["cap_currency", "trace_id", "vendor", "spent"])
    for currency, figures in report.figures.get("currencies", {}).items():
        for row in figures["by_trace_vendor"]:
            writer.writerow([currency, row["trace_id"], row["vendor"], row["spent"]["amount"]])
    return response
