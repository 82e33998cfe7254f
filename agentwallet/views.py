"""Project-level views: health check, favicon, JSON errors for the API, the portal's
entry."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from django.views.defaults import page_not_found, server_error

from agentwallet.api.exceptions import error_body
from ledger.fx import NO_RATES_WARNING, fx_staleness

FAVICON = settings.BASE_DIR / "static" / "favicon.ico"


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers. Redis and the exchange rates' age are reported but
    do not fail the check, because authorizations wait on neither; `warnings` says what
    an operator should fix."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    body: dict[str, Any] = {"status": "ok", "database": connection.vendor}
    warnings: list[str] = []
    if settings.REDIS_URL:
        body["redis"] = _redis_status()
        if body["redis"] != "ok":
            warnings.append(f"Redis is {body['redis']}: Celery work waits until it answers.")
    body["fx"] = _fx_status(warnings)
    body["warnings"] = warnings
    return JsonResponse(body)


def _fx_status(warnings: list[str]) -> dict[str, Any] | None:
    try:
        staleness = fx_staleness()
    except DatabaseError:
        warnings.append("Exchange rates could not be read: are the migrations applied?")
        return None
    if staleness is None:
        warnings.append(NO_RATES_WARNING)
        return None
    if staleness.stale:
        warnings.append(staleness.warning)
    return {
        "rates_date": staleness.rates_date.isoformat(),
        "age_days": staleness.age_days,
        "max_age_days": staleness.max_age_days,
        "stale": staleness.stale,
    }


def _redis_status() -> str:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        return "ok" if client.ping() else "error"
    except redis.RedisError:
        return "unreachable"


@require_safe
@cache_control(public=True, max_age=7 * 24 * 3600)
def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask every site for /favicon.ico; answer it instead of logging a 404."""
    return HttpResponse(FAVICON.read_bytes(), content_type="image/x-icon")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return page_not_found(request, exception)  # type: ignore[arg-type]


def internal_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("server_error", "Internal error."), status=500)
    return server_error(request)
