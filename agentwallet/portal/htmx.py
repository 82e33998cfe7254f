"""One view per page: the whole page on a normal request, only the changed fragment on
an HTMX swap (django-htmx's `request.htmx`)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers


def wants_fragment(request: HttpRequest) -> bool:
    """An HTMX swap wants the fragment; htmx restoring a page it has no copy of (back or
    forward after a pushed URL) wants the whole page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def vary_on_htmx(response: HttpResponse) -> HttpResponse:
    """The same URL answers a fragment or a page: caches must keep them apart."""
    patch_vary_headers(response, ("HX-Request", "HX-History-Restore-Request"))
    return response


def render_page(
    request: HttpRequest, fragment: str, page: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    template = fragment if wants_fragment(request) else page
    return vary_on_htmx(render(request, template, context, status=status))


def keyset_id(value: str) -> int | None:
    """A row id from the query string (`before=`), or None for anything else: digits
    only (str.isdigit takes "²"), a bigint at most."""
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None
