from __future__ import annotations

from django.urls import path

from approvals import apis

urlpatterns = [
    path("approvals", apis.ApprovalListApi.as_view(), name="approvals"),
    path("approvals/<int:approval_id>", apis.ApprovalDetailApi.as_view(), name="approval"),
    path(
        "approvals/<int:approval_id>/approve",
        apis.ApprovalApproveApi.as_view(),
        name="approval-approve",
    ),
    path("approvals/<int:approval_id>/deny", apis.ApprovalDenyApi.as_view(), name="approval-deny"),
    path(
        "agents/<uuid:agent_id>/approvals",
        apis.AgentApprovalAskApi.as_view(),
        name="agent-approvals",
    ),
]
