"""Errors that Django answers before any view runs, in the API's JSON shape.

Agents, the card network and Slack read JSON; Django's own answers to a disallowed
Host (raised from CommonMiddleware) are HTML pages, and in DEBUG a traceback page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, JsonResponse

from agentwallet.api.exceptions import error_body

MACHINE_PATHS = ("/api/", "/slack/", "/webhooks/", "/healthz", "/mcp")


def is_machine_path(path: str) -> bool:
    return path.startswith(MACHINE_PATHS)


class MachineRequestMiddleware:
    """For machine paths: a disallowed Host and a NUL in the path or query string
    (which no lookup can use: PostgreSQL refuses NUL in text) get a JSON 400."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_machine_path(request.path_info):
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost:
            return JsonResponse(
                error_body("disallowed_host", "This host is not served here."), status=400
            )
        if "\x00" in request.path_info or any(
            "\x00" in key or "\x00" in value
            for key, values in request.GET.lists()
            for value in values
        ):
            return JsonResponse(
                error_body("invalid", "The URL must not contain NUL characters."), status=400
            )
        return self.get_response(request)
