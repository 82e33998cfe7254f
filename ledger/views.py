"""The portal's ledger: the entries the user may see, filtered as the API filters them,
with totals for the filter, keyset pages, and the same rows as a streamed CSV; and its
trace pages: traces by spend this month, and one trace's spend, caps and entries."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, QuerySet, Sum
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from agentwallet.lib.money import from_cents
from agentwallet.portal.htmx import keyset_id, render_page, wants_fragment
from agentwallet.portal.selectors import PortalScope, portal_scope_required
from ledger.exports import ledger_csv
from ledger.filters import LedgerEntryFilter
from ledger.models import LedgerEntry
from ledger.selectors import (
    spend_totals_read,
    trace_detail_read,
    trace_entries_page,
    trace_month_page,
)

PAGE_SIZE = 50


def _filtered(request) -> tuple[LedgerEntryFilter, QuerySet[LedgerEntry], PortalScope]:
    scope = portal_scope_required(user=request.user)
    entries = scope.limit(LedgerEntry.objects.all())
    filterset = LedgerEntryFilter(request.GET, queryset=entries)
    return filterset, (filterset.qs if filterset.is_valid() else entries.none()), scope


def _totals(
    filterset: LedgerEntryFilter, entries: QuerySet[LedgerEntry], scope: PortalScope
) -> list[dict[str, object]]:
    """Net spend and entries per cap currency of the filter. Unfiltered, from the day
    rollup and the ledger's tail (the whole ledger otherwise: bench/portal.py); a filter
    narrows the entries enough to count them."""
    if filterset.is_valid() and not any(filterset.form.cleaned_data.values()):
        by_currency = spend_totals_read(principal_ids=scope.team_ids)
    else:
        by_currency = {
            row["cap_amount_currency"]: (row["net"] or 0, row["entries"])
            for row in entries.order_by()
            .values("cap_amount_currency")
            .annotate(net=Sum("cap_cents"), entries=Count("id"))
        }
    return [
        {"currency": currency, "net": from_cents(cents), "entries": count}
        for currency, (cents, count) in sorted(by_currency.items())
    ]


@login_required
def ledger_list(request) -> HttpResponse:
    filterset, entries, scope = _filtered(request)
    before = keyset_id(request.GET.get("before", ""))
    # The totals are the filter's, the same on every page: counted on the first page only
    # (they read every entry of the filter; bench/portal.py).
    totals = None
    if before is None:
        totals = _totals(filterset, entries, scope)
    page = entries.select_related("agent", "card", "vendor", "authorization").order_by("-id")
    if before is not None:
        page = page.filter(id__lt=before)
    rows = list(page[: PAGE_SIZE + 1])
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    query = request.GET.copy()
    query.pop("before", None)
    context = {
        "filter": filterset,
        "errors": filterset.errors,
        "rows": rows,
        "totals": totals,
        "next_before": rows[-1].pk if more and rows else None,
        "query": query.urlencode(),
    }
    if request.htmx:
        return render(request, "ledger/_entries.html", context)
    return render(request, "ledger/list.html", context)


@login_required
def ledger_export_csv(request) -> StreamingHttpResponse:
    """Every entry of the filter, streamed (constant memory; ledger/exports.py)."""
    _, entries, _ = _filtered(request)
    response = StreamingHttpResponse(ledger_csv(entries), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="ledger.csv"'
    return response


@login_required
def trace_list(request) -> HttpResponse:
    """Traces by spend this month (UTC), searched by trace id prefix, page by page."""
    scope = portal_scope_required(user=request.user)
    query = request.GET.get("q", "").strip()[:128]
    traces = trace_month_page(
        principal_ids=scope.team_ids,
        now=timezone.now(),
        prefix=query,
        page=request.GET.get("page"),
    )
    context = {"traces": traces, "query": query, "scope": scope}
    return render_page(request, "ledger/_trace_rows.html", "ledger/trace_list.html", context)


@login_required
def trace_detail(request, trace_id: str) -> HttpResponse:
    """One trace: spend by vendor, by agent and per day, its caps, its entries. An HTMX
    request (the entries' pager) gets the entries page only."""
    scope = portal_scope_required(user=request.user)
    before = keyset_id(request.GET.get("before", ""))
    entries = trace_entries_page(agents=scope.agents(), trace_id=trace_id, before=before)
    context = {"trace_id": trace_id, "page": entries, "paged": before is not None, "scope": scope}
    if not wants_fragment(request):
        context["trace"] = trace_detail_read(
            agents=scope.agents(), trace_id=trace_id, now=timezone.now()
        )
    return render_page(request, "ledger/_trace_entries.html", "ledger/trace_detail.html", context)
