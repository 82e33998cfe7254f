"""The approvals queue in the portal: the same services as Slack and the API, so a
request is decided once whichever channel clicks first."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import MoneyError, parse_amount
from agentwallet.portal.selectors import PortalScope, dashboard_read, portal_scope_required
from approvals.models import ApprovalRequest, ApprovalStatus, DecisionChannel
from approvals.services import approval_deny, approval_grant
from ledger.selectors import agents_top_traces, approvals_declined_charges
from wallets.selectors import approvals_declined_x402_payments

DECIDED_SHOWN = 20
TOP_TRACES_OVER = timedelta(days=1)


def _visible(scope: PortalScope):
    return ApprovalRequest.objects.filter(agent__in=scope.agents()).select_related(
        "agent__principal", "vendor", "bump"
    )


def _queue_context(request, scope: PortalScope, **extra) -> dict:
    visible = _visible(scope)
    pending = list(visible.filter(status=ApprovalStatus.PENDING).order_by("-created_at"))
    # The context an approver needs: each agent's biggest traces of the last 24 hours.
    tops = agents_top_traces(
        agent_ids={request.agent_id for request in pending},
        since=timezone.now() - TOP_TRACES_OVER,
    )
    pending_ids = [request.pk for request in pending]
    charges = approvals_declined_charges(approval_ids=pending_ids)
    payments = approvals_declined_x402_payments(approval_ids=pending_ids)
    for approval in pending:
        approval.top_traces = tops.get(approval.agent_id, [])
        approval.declined_charge = charges.get(approval.pk)
        approval.declined_x402 = payments.get(approval.pk)
    return {
        "pending": pending,
        "decided": list(
            visible.exclude(status=ApprovalStatus.PENDING).order_by("-decided_at", "-id")[
                :DECIDED_SHOWN
            ]
        ),
        "may_decide": request.user.has_perm("approvals.approve_requests"),
        **extra,
    }


@login_required
def approval_queue(request) -> HttpResponse:
    scope = portal_scope_required(user=request.user)
    context = _queue_context(request, scope)
    if request.htmx:
        return render(request, "approvals/_queue.html", context)
    return render(request, "approvals/queue.html", context)


@login_required
@require_POST
def approval_decide(request, approval_id: str, action: str) -> HttpResponse:
    scope = portal_scope_required(user=request.user)
    if not request.user.has_perm("approvals.approve_requests"):
        raise PermissionDenied("Deciding needs the approve permission.")
    approval = _visible(scope).filter(pk=approval_id).first()
    if approval is None:
        raise Http404("No such approval request.")
    note = request.POST.get("note", "").strip()[:500]
    raw_amount = request.POST.get("amount", "").strip()
    message, error = "", ""
    try:
        if action == "approve":
            amount = None
            if raw_amount:
                amount = parse_amount(raw_amount, str(approval.requested_amount.currency))
            approval_grant(
                request=approval,
                actor_label=request.user.get_username(),
                via=DecisionChannel.PORTAL,
                amount=amount,
                note=note,
            )
            message = f"Approved request {approval.pk}."
        else:
            approval_deny(
                request=approval,
                actor_label=request.user.get_username(),
                via=DecisionChannel.PORTAL,
                note=note,
            )
            message = f"Denied request {approval.pk}."
    except MoneyError as exc:
        error = f"Request {approval.pk}: {exc} Nothing changed."
    except Conflict as exc:
        error = f"{exc} Nothing changed."
    from_dashboard = request.POST.get("from") == "dashboard"  # its one-click decide
    if not request.htmx:  # a plain form post: say it on the page it returns to
        if error:
            messages.error(request, error)
        else:
            messages.success(request, message)
        return redirect("dashboard" if from_dashboard else "portal-approvals")
    if from_dashboard:
        board = dashboard_read(scope=scope, now=timezone.now())
        context = {"board": board, "scope": scope, "message": message, "error": error}
        return render(request, "portal/_dashboard_panels.html", context)
    context = _queue_context(request, scope, message=message, error=error)
    return render(request, "approvals/_queue.html", context, status=200)
