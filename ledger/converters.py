"""URL converters shared by the portal's and the API's routes (registered once, here)."""

from __future__ import annotations

from django.urls import register_converter

from wallets.services import TRACE_ID_PATTERN

TRACE_ID = "trace_id"


class TraceIdConverter:
    """A trace id as agents may set one (wallets.services.validate_trace_id): it may hold
    `/`, `#`, `:` and `@`, so links url-encode it (`urlencode:''`)."""

    regex = TRACE_ID_PATTERN.pattern.removeprefix("^").removesuffix("$")

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TraceIdConverter, TRACE_ID)
