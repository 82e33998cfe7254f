"""Request parsing for the JSON API."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class DecimalJSONParser(JSONParser):
    """JSON parser that keeps numbers exact (Decimal, never float) and caps body size.

    DRF reads the stream itself, so Django's DATA_UPLOAD_MAX_MEMORY_SIZE check on
    request.body never runs for API requests; the cap is enforced here instead.
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: dict[str, Any] | None = None,
    ) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        try:
            data = json.loads(
                raw.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse_constant
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(f"Malformed JSON: {exc}") from exc
        except RecursionError as exc:
            raise exceptions.ParseError("JSON is nested too deeply.") from exc
        problem = unusable_json(data)
        if problem:
            raise exceptions.ParseError(problem)
        return data


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


MAX_DEPTH = 32
# NUL, which PostgreSQL cannot store in text, and lone UTF-16 surrogates ("\ud800"),
# which JSON allows but no UTF-8 text can hold (rendering them back fails).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unusable_json(data: Any, depth: int = 0) -> str | None:
    """Why parsed JSON cannot be used as input, or None: nested deeper than any of our
    bodies (validating it would exhaust the stack), or a string (key or value) holding
    a character no text column can store."""
    if depth > MAX_DEPTH:
        return f"JSON is nested more than {MAX_DEPTH} levels deep."
    if isinstance(data, str):
        return _string_problem(data)
    if isinstance(data, dict):
        for key, value in data.items():
            problem = _string_problem(key) or unusable_json(value, depth + 1)
            if problem:
                return problem
    elif isinstance(data, list):
        for value in data:
            problem = unusable_json(value, depth + 1)
            if problem:
                return problem
    return None


def _string_problem(text: str) -> str | None:
    if _UNSTORABLE.search(text):
        return "Strings must not contain NUL characters or unpaired surrogates."
    return None
