from __future__ import annotations

from django.urls import path

from wallets import apis
from wallets.x402 import apis as x402_apis

urlpatterns = [
    path("agents", apis.AgentListCreateApi.as_view(), name="agents"),
    path("agents/<uuid:agent_id>", apis.AgentDetailApi.as_view(), name="agent-detail"),
    path("agents/<uuid:agent_id>/trace", apis.AgentTraceApi.as_view(), name="agent-trace"),
    path("agents/<uuid:agent_id>/wallet", x402_apis.WalletApi.as_view(), name="agent-wallet"),
    path("agents/<uuid:agent_id>/x402/pay", x402_apis.X402PayApi.as_view(), name="agent-x402-pay"),
    path(
        "agents/<uuid:agent_id>/x402/payments",
        x402_apis.X402PaymentListApi.as_view(),
        name="agent-x402-payments",
    ),
    path(
        "agents/<uuid:agent_id>/x402/payments/<uuid:payment_id>",
        x402_apis.X402PaymentDetailApi.as_view(),
        name="agent-x402-payment",
    ),
    path(
        "agents/<uuid:agent_id>/x402/payments/<uuid:payment_id>/settled",
        x402_apis.X402SettledApi.as_view(),
        name="agent-x402-settled",
    ),
]
