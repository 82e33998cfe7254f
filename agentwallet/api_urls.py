"""Everything under /api/."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("wallets.api_urls")),
    path("", include("cards.api_urls")),
    path("", include("ledger.api_urls")),
    path("", include("policies.api_urls")),
    path("", include("approvals.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
