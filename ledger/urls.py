from __future__ import annotations

from django.urls import path, register_converter

from ledger import views
from wallets.services import TRACE_ID_PATTERN


class TraceIdConverter:
    """A trace id as agents may set one (wallets.services.validate_trace_id): it may hold
    `/`, `#`, `:` and `@`, so links url-encode it (`urlencode:''`)."""

    regex = TRACE_ID_PATTERN.pattern.removeprefix("^").removesuffix("$")

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(TraceIdConverter, "trace_id")

urlpatterns = [
    path("ledger/", views.ledger_list, name="portal-ledger"),
    path("ledger/export.csv", views.ledger_export_csv, name="portal-ledger-export"),
    path("traces/", views.trace_list, name="portal-traces"),
    path("traces/<trace_id:trace_id>/", views.trace_detail, name="portal-trace"),
]
