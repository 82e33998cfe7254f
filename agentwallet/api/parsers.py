"""Request parsing for the JSON API."""

from __future__ import annotations

import json
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
            return json.loads(
                raw.decode("utf-8"), parse_float=Decimal, parse_constant=_refuse_constant
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(f"Malformed JSON: {exc}") from exc


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")
