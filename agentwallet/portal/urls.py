from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from agentwallet.portal import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/<slug:panel>/", views.dashboard_panel, name="portal-dashboard-panel"),
    path("audit/", views.audit, name="portal-audit"),
    path("reports/", views.reports, name="portal-reports"),
    path("reports/<int:report_id>/", views.report_detail, name="portal-report"),
    path("reports/<int:report_id>/report.csv", views.report_csv, name="portal-report-csv"),
    path(
        "reconciliation/<int:run_id>/",
        views.reconciliation_detail,
        name="portal-reconciliation",
    ),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
