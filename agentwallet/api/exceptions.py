"""One exception handler for the whole API: every error has DESIGN's JSON shape.

{"error": {"code": "...", "message": "...", "fields": {...}}}
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from agentwallet.api.parsers import PayloadTooLarge
from agentwallet.lib.errors import Conflict
from cards.issuers import IssuerError

logger = logging.getLogger("agentwallet.api")


class SystemUnavailable(exceptions.APIException):
    """The database is down, hangs or did not answer within the request's deadline."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The system cannot answer now; try again."
    default_code = "system_unavailable"


class IssuerUnavailable(exceptions.APIException):
    """The card issuer refused or did not answer; nothing was issued or changed."""

    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The card issuer did not issue the card; try again."
    default_code = "issuer_unavailable"


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def _flatten(detail: Any) -> Any:
    """Turn DRF's ErrorDetail trees into plain lists of strings."""
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_message(fields: dict[str, Any]) -> str:
    for name, errors in fields.items():
        value = errors
        while isinstance(value, list | dict) and value:
            value = value[0] if isinstance(value, list) else next(iter(value.values()))
        if name == "non_field_errors":
            return str(value)
        return f"{name}: {value}"
    return "Invalid input."


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def decline_body(
    code: str,
    message: str,
    *,
    scope: str,
    limit: dict[str, str] | None,
    remaining: dict[str, str] | None,
    approval_id: int | None,
    **extra: Any,
) -> dict[str, Any]:
    """A policy's no (403) in the error shape, with the cap that stopped it as a card
    decline names it (`cap`: scope, limit, remaining; None when no cap did) and the
    approval request it opened, so that an agent stops and asks instead of retrying."""
    body = error_body(code, message)
    cap = {"scope": scope, "limit": limit, "remaining": remaining} if scope else None
    body["error"] |= {"cap": cap, "approval_id": approval_id, **extra}
    return body


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(as_serializer_error(exc))
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found.")
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    elif isinstance(exc, IssuerError):
        exc = IssuerUnavailable(str(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, OperationalError | InterfaceError):
        # Connection lost, timed out or cancelled: not the caller's fault, and not a bug.
        logger.warning("answered 503: database unavailable (%s)", exc)
        exc = SystemUnavailable()

    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django log it and answer 500

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _flatten(detail)
        response.data = error_body("invalid", _first_message(fields), fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        if not isinstance(code, str):
            code = "error"
        response.data = error_body(code, str(detail))
    return response
