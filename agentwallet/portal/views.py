"""The portal's pages: parse, read through a selector, render. A page answers its full
template on a normal request and only the fragment that changes on an HTMX request."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
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
    """The sprint reports' place in the navigation; the reports themselves come with
    the reconcile work (exports, sprint reports), which this page will list."""
    portal_scope_required(user=request.user)
    return render(request, "portal/reports.html")
