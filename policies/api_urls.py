from __future__ import annotations

from django.urls import path

from policies import apis

urlpatterns = [
    path("vendors", apis.VendorListCreateApi.as_view(), name="vendors"),
    path("policies", apis.PolicyListCreateApi.as_view(), name="policies"),
    path("policies/<slug:slug>", apis.PolicyDetailApi.as_view(), name="policy-detail"),
    path("policies/<slug:slug>/what-if", apis.PolicyWhatIfApi.as_view(), name="policy-what-if"),
]
