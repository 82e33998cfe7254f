from __future__ import annotations

from django.urls import path

from ledger import apis, converters

urlpatterns = [
    path("agents/<uuid:agent_id>/budget", apis.AgentBudgetApi.as_view(), name="agent-budget"),
    path("ledger", apis.LedgerListApi.as_view(), name="ledger"),
    path("ledger/export", apis.LedgerExportApi.as_view(), name="ledger-export"),
    path("traces", apis.TraceListApi.as_view(), name="traces"),
    path(
        f"traces/<{converters.TRACE_ID}:trace_id>",
        apis.TraceDetailApi.as_view(),
        name="trace-detail",
    ),
    path(
        "network/authorizations",
        apis.NetworkAuthorizationCreateApi.as_view(),
        name="network-authorizations",
    ),
    path(
        "network/authorizations/<str:network_id>/capture",
        apis.NetworkAuthorizationCaptureApi.as_view(),
        name="network-capture",
    ),
    path(
        "network/authorizations/<str:network_id>/reverse",
        apis.NetworkAuthorizationReverseApi.as_view(),
        name="network-reverse",
    ),
    path("network/refunds", apis.NetworkRefundApi.as_view(), name="network-refunds"),
]
