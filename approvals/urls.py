from __future__ import annotations

from django.urls import path, re_path

from approvals import views

urlpatterns = [
    path("approvals/", views.approval_queue, name="portal-approvals"),
    re_path(
        r"^approvals/(?P<approval_id>[0-9]+)/(?P<action>approve|deny)$",
        views.approval_decide,
        name="portal-approval-decide",
    ),
]
