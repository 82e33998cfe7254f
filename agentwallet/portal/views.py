"""The portal's pages: parse, read through a selector, render. A page answers its full
template on a normal request and only the fragment that changes on an HTMX request."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from agentwallet.portal.selectors import dashboard_read, portal_scope_required


@login_required
def dashboard(request) -> HttpResponse:
    scope = portal_scope_required(user=request.user)
    context = {"board": dashboard_read(scope=scope, now=timezone.now()), "scope": scope}
    if request.htmx:
        return render(request, "portal/_dashboard_panels.html", context)
    return render(request, "portal/dashboard.html", context)
