"""MCP over streamable HTTP at /mcp, served by the app itself: stateless, each JSON-RPC
POST answered with a JSON body (as DESIGN says: in the app's own process, under
runserver or gunicorn's sync workers).

The protocol is the mcp package's own (its StreamableHTTPSessionManager, one per
request, stateless); this module only carries a Django request to it and back, and
gives the tools (agentwallet_client.mcp, the same as over stdio) the client of the key
that called: an AgentWallet talking to this very application in process, so every tool
call goes through the API's own authentication, scoping and validation.
"""

from __future__ import annotations

import contextvars
import ipaddress
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import httpx
from agentwallet_client import AgentWallet, AgentWalletError
from agentwallet_client.mcp import build_server
from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from rest_framework.exceptions import AuthenticationFailed

from agentwallet.api.exceptions import error_body
from wallets.authentication import BearerKeyAuthentication
from wallets.models import ApiKeyKind

# The calling agent's client, for the tools of this request (copied into the threads
# that run them: asgiref and anyio carry context variables along).
_wallet: contextvars.ContextVar[AgentWallet] = contextvars.ContextVar("agentwallet_mcp_wallet")
MAX_BODY = 1024 * 1024


# The tools' calls into this application run on these long-lived threads, which keep
# their database connections between calls as any request thread does (CONN_MAX_AGE,
# through the app's own request_started/finished). The mcp package runs a tool in a
# thread of the request's event loop, which ends with the request: a new connection per
# tool call made get_budget over /mcp 44 ms at the median instead of 26 ms.
_app_threads = ThreadPoolExecutor(max_workers=4, thread_name_prefix="agentwallet-mcp")


class _InProcess(httpx.WSGITransport):
    """The tools' calls into this application, on the app threads; the body is read and
    the response closed there, so that the request ends (request_finished) on the thread
    that holds its connection."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return _app_threads.submit(self._call_app, request).result()

    def _call_app(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        try:
            response.read()
        finally:
            response.close()
        return response


def _in_process_transport() -> httpx.BaseTransport:
    from agentwallet.wsgi import application  # the same application, its full stack

    return _InProcess(app=application)


def refuse_private_url(url: str) -> None:
    """pay_x402 fetches a URL from inside the deployment: never one of its own networks
    (loopback, private, link-local), unless AGENTWALLET_MCP_FETCH_PRIVATE allows it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AgentWalletError(400, "url_not_allowed", "Only http(s) URLs can be fetched.")
    if settings.AGENTWALLET_MCP_FETCH_PRIVATE:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, parts.port or 443)}
    except OSError as error:
        raise AgentWalletError(
            400, "url_not_allowed", f"Cannot resolve {parts.hostname}."
        ) from error
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise AgentWalletError(
                400, "url_not_allowed", f"{parts.hostname} is on a private network ({ip})."
            )


@cache
def _server() -> Any:
    """One MCP server per process; its tools find the caller's client in `_wallet`."""
    return build_server(_wallet.get, check_url=refuse_private_url)


_manager_lock = threading.Lock()


def _session_manager() -> StreamableHTTPSessionManager:
    """A fresh stateless session manager for one request (a manager runs once), made
    through MCPServer's public streamable_http_app; under a lock, as runserver answers
    requests in threads and the server keeps the last one it made."""
    with _manager_lock:
        _server().streamable_http_app(
            json_response=True,
            stateless_http=True,
            # Django has checked the Host header already (ALLOWED_HOSTS).
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        return _server().session_manager


@csrf_exempt
def mcp_endpoint(request: HttpRequest) -> HttpResponse:
    try:
        authenticated = BearerKeyAuthentication().authenticate(request)
    except AuthenticationFailed as error:
        authenticated, reason = None, str(error.detail)
    else:
        reason = "An agent's API key is required (Authorization: Bearer <key>)."
    if authenticated is None:
        response = JsonResponse(error_body("not_authenticated", reason), status=401)
        response["WWW-Authenticate"] = "Bearer"
        return response
    actor, key = authenticated
    if key.kind != ApiKeyKind.AGENT:
        return JsonResponse(
            error_body("agent_key_required", "MCP acts as one agent: use that agent's key."),
            status=403,
        )
    if len(request.body) > MAX_BODY:
        return JsonResponse(error_body("payload_too_large", "The body is too large."), status=413)
    raw_key = request.headers["Authorization"].split(None, 1)[1]
    wallet = AgentWallet(
        f"{request.scheme}://{request.get_host()}",  # the caller's host: ALLOWED_HOSTS passed
        raw_key,
        agent_id=str(actor.agent_id),
        transport=_in_process_transport(),
    )
    token = _wallet.set(wallet)
    try:
        status, headers, body = async_to_sync(_answer)(request)
    finally:
        _wallet.reset(token)
        wallet.close()
    response = HttpResponse(body, status=status)
    for name, value in headers:
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
            response[name] = value
    return response


async def _answer(request: HttpRequest) -> tuple[int, list[tuple[str, str]], bytes]:
    """The request through the mcp package's stateless streamable HTTP transport."""
    manager = _session_manager()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "scheme": request.scheme,
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": request.META.get("QUERY_STRING", "").encode(),
        "headers": [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in request.headers.items()
        ],
        "client": (request.META.get("REMOTE_ADDR", ""), 0),
        "server": (request.get_host(), 0),
    }
    body = request.body
    sent: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
            sent["headers"] = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", [])
            ]
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    async with manager.run():
        await manager.handle_request(scope, receive, send)
    return sent["status"], sent["headers"], sent["body"]
