"""WSGI entry point: Django, with the card network's authorization endpoint served
through a handler that skips the middleware stack.

Every card swipe waits on `POST /api/network/authorizations`. Sessions, CSRF, messages,
auth, static files and HTMX do nothing for a signed server-to-server call, yet the stack
cost about a tenth of its CPU. The bare handler keeps Django's request cycle (signals,
so connections are managed as usual; exception-to-response; URL resolution) and
SecurityMiddleware; the view checks the Host header itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentwallet.settings")

django_application = get_wsgi_application()

from django.core.handlers.exception import convert_exception_to_response  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.middleware.security import SecurityMiddleware  # noqa: E402


def _bare_views() -> dict[str, Any]:
    from ledger.apis import network_authorization_create

    return {"/api/network/authorizations": network_authorization_create}


BARE_VIEWS = _bare_views()


class BareWSGIHandler(WSGIHandler):
    """Django's WSGI handler for BARE_VIEWS: SecurityMiddleware is its only middleware
    and the path names the view (a test checks the URLconf agrees)."""

    def load_middleware(self, is_async: bool = False) -> None:
        # What BaseHandler.load_middleware sets up, for a stack of one.
        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        view = convert_exception_to_response(self._get_response)
        self._middleware_chain = convert_exception_to_response(SecurityMiddleware(view))

    def resolve_request(self, request: Any) -> tuple[Any, tuple[()], dict[str, Any]]:
        return BARE_VIEWS[request.path_info], (), {}


bare_application = BareWSGIHandler()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") in BARE_VIEWS:
        return bare_application(environ, start_response)
    return django_application(environ, start_response)
