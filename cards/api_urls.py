from __future__ import annotations

from django.urls import path

from cards import apis

urlpatterns = [
    path("agents/<uuid:agent_id>/freeze", apis.AgentFreezeApi.as_view(), name="agent-freeze"),
    path("agents/<uuid:agent_id>/unfreeze", apis.AgentUnfreezeApi.as_view(), name="agent-unfreeze"),
    path("agents/<uuid:agent_id>/cards", apis.CardListCreateApi.as_view(), name="agent-cards"),
    path(
        "agents/<uuid:agent_id>/cards/<uuid:card_id>",
        apis.CardDetailApi.as_view(),
        name="card-detail",
    ),
    path(
        "agents/<uuid:agent_id>/cards/<uuid:card_id>/freeze",
        apis.CardFreezeApi.as_view(),
        name="card-freeze",
    ),
    path(
        "agents/<uuid:agent_id>/cards/<uuid:card_id>/unfreeze",
        apis.CardUnfreezeApi.as_view(),
        name="card-unfreeze",
    ),
    path(
        "agents/<uuid:agent_id>/cards/<uuid:card_id>/merchant-lock/reset",
        apis.CardMerchantLockResetApi.as_view(),
        name="card-merchant-lock-reset",
    ),
]
