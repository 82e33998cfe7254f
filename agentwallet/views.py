"""Project-level views: health check, JSON errors for the API, the portal's entry."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.defaults import page_not_found, server_error

from agentwallet.api.exceptions import error_body


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers; Redis is reported but does not fail the check,
    because authorizations never wait on it."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    body: dict[str, Any] = {"status": "ok", "database": connection.vendor}
    if settings.REDIS_URL:
        body["redis"] = _redis_status()
    return JsonResponse(body)


def _redis_status() -> str:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        return "ok" if client.ping() else "error"
    except redis.RedisError:
        return "unreachable"


def home(request: HttpRequest) -> HttpResponse:
    return redirect("admin:index")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return page_not_found(request, exception)  # type: ignore[arg-type]


def internal_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "Internal error."), status=500)
    return server_error(request)
