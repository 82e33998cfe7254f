from __future__ import annotations

from django.urls import path

from wallets import apis

urlpatterns = [
    path("agents", apis.AgentListCreateApi.as_view(), name="agents"),
    path("agents/<uuid:agent_id>", apis.AgentDetailApi.as_view(), name="agent-detail"),
    path("agents/<uuid:agent_id>/trace", apis.AgentTraceApi.as_view(), name="agent-trace"),
]
