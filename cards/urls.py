from __future__ import annotations

from django.urls import path, re_path

from cards import views

urlpatterns = [
    path("cards/<str:card_id>/", views.card_detail, name="portal-card"),
    re_path(
        r"^cards/(?P<card_id>[^/]+)/(?P<action>freeze|unfreeze|reset-lock|cap)$",
        views.card_action,
        name="portal-card-action",
    ),
]
