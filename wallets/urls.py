from __future__ import annotations

from django.urls import path, re_path

from wallets import views

urlpatterns = [
    # The link mailed to a principal: no sign-in, the signed token is the credential.
    path("principals/verify/<str:token>/", views.principal_verify_page, name="principal-verify"),
    path("agents/", views.agent_list, name="portal-agents"),
    path("agents/new/", views.agent_new, name="portal-agent-new"),
    path("agents/<str:agent_id>/", views.agent_detail, name="portal-agent"),
    path(
        "agents/<str:agent_id>/issue-card", views.agent_card_issue, name="portal-agent-issue-card"
    ),
    re_path(
        r"^agents/(?P<agent_id>[^/]+)/(?P<action>freeze-card|unfreeze-card|freeze-agent|"
        r"unfreeze-agent|create-key|revoke-key|resend-verification)$",
        views.agent_action,
        name="portal-agent-action",
    ),
]
