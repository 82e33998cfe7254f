from __future__ import annotations

from django.urls import path

from ledger import converters, views

urlpatterns = [
    path("ledger/", views.ledger_list, name="portal-ledger"),
    path("ledger/export.csv", views.ledger_export_csv, name="portal-ledger-export"),
    path("traces/", views.trace_list, name="portal-traces"),
    path(f"traces/<{converters.TRACE_ID}:trace_id>/", views.trace_detail, name="portal-trace"),
]
