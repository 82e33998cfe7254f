"""Everything under /api/."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from agentwallet.api.exceptions import error_body


@csrf_exempt  # else an unsafe method gets CSRF's HTML 403 (every DRF view is exempt too)
def api_not_found(request: HttpRequest) -> JsonResponse:
    """Unknown API paths answer in JSON, also with DEBUG on (whose 404 page is HTML)."""
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=404)


urlpatterns = [
    path("", include("wallets.api_urls")),
    path("", include("cards.api_urls")),
    path("", include("ledger.api_urls")),
    path("", include("policies.api_urls")),
    path("", include("approvals.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    re_path(r"", api_not_found),  # last: everything no route above took
]
