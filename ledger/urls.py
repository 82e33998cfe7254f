from __future__ import annotations

from django.urls import path

from ledger import views

urlpatterns = [
    path("ledger/", views.ledger_list, name="portal-ledger"),
    path("ledger/export.csv", views.ledger_export_csv, name="portal-ledger-export"),
]
