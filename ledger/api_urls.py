from __future__ import annotations

from django.urls import path

from ledger import apis

urlpatterns = [
    path("agents/<uuid:agent_id>/budget", apis.AgentBudgetApi.as_view(), name="agent-budget"),
]
