"""The portal's pages: parse, read through a selector, render. A page answers its full
template on a normal request and only the fragment that changes on an HTMX request."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django_htmx.middleware import HtmxDetails

from agentwallet.portal.selectors import PortalScope, dashboard_read, portal_scope


class HtmxHttpRequest:  # typing only: django-htmx's middleware sets `request.htmx`
    htmx: HtmxDetails


def _scope_of(request) -> PortalScope:
    scope = portal_scope(user=request.user)
    if scope is None:
        raise PermissionDenied("No portal role: ask an administrator for one.")
    return scope


@login_required
def dashboard(request) -> HttpResponse:
    scope = _scope_of(request)
    context = {"board": dashboard_read(scope=scope, now=timezone.now()), "scope": scope}
    if request.htmx:
        return render(request, "portal/_dashboard_panels.html", context)
    return render(request, "portal/dashboard.html", context)
