from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from agentwallet import views
from agentwallet.mcp import mcp_endpoint
from approvals.slack.views import slack_interactivity
from ledger.stripe_webhook import stripe_webhook

urlpatterns = [
    path("", include("agentwallet.portal.urls")),
    path("", include("approvals.urls")),
    path("", include("wallets.urls")),
    path("", include("cards.urls")),
    path("", include("ledger.urls")),
    path("", include("policies.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("api/", include("agentwallet.api_urls")),
    path("slack/interactivity", slack_interactivity, name="slack-interactivity"),
    path("webhooks/stripe", stripe_webhook, name="stripe-webhook"),
    path("mcp", mcp_endpoint, name="mcp"),
    path("admin/", admin.site.urls),
]

handler404 = "agentwallet.views.not_found"
handler500 = "agentwallet.views.internal_error"
