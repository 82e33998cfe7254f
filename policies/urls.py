from __future__ import annotations

from django.urls import path

from policies import views

urlpatterns = [
    path("policies/", views.policy_list, name="portal-policies"),
    path("policies/<slug:slug>/", views.policy_detail, name="portal-policy"),
    path("policies/<slug:slug>/what-if/", views.policy_what_if, name="portal-policy-what-if"),
    path("vendors/", views.vendor_list, name="portal-vendors"),
]
