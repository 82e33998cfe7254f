"""The project's app configs: its system checks, and the admin site with its index."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib import admin, messages
from django.contrib.admin.apps import AdminConfig
from django.http import HttpRequest
from django.template.response import TemplateResponse


class AgentWalletConfig(AppConfig):
    name = "agentwallet"
    default = True

    def ready(self) -> None:
        from agentwallet import checks  # noqa: F401 (registers the system checks)


class AgentWalletAdminSite(admin.AdminSite):
    site_header = "AgentWallet"
    site_title = "AgentWallet admin"
    index_title = "Spend control"

    def index(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> TemplateResponse:
        """The index says so when the exchange rates are stale or missing."""
        from ledger.fx import fx_warning

        warning = fx_warning()
        if warning:
            messages.warning(request, warning)
        return super().index(request, extra_context)


class AgentWalletAdminConfig(AdminConfig):
    """django.contrib.admin, with AgentWalletAdminSite as `admin.site`."""

    default = False
    default_site = "agentwallet.apps.AgentWalletAdminSite"
