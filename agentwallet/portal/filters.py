"""Filters of the portal's audit page, parsed like the API's filters (django-filter)."""

from __future__ import annotations

import django_filters

from agentwallet.models import AuditAction, AuditEvent


class AuditEventFilter(django_filters.FilterSet):
    action = django_filters.ChoiceFilter(choices=AuditAction.choices)
    # "card." or "approval." picks a family of actions.
    family = django_filters.ChoiceFilter(
        field_name="action",
        lookup_expr="startswith",
        choices=[
            (f"{family}.", family.title())
            for family in ("agent", "card", "key", "approval", "cap", "policy", "vendor")
        ],
    )
    actor = django_filters.CharFilter(field_name="actor", lookup_expr="icontains", max_length=200)
    agent = django_filters.UUIDFilter(field_name="agent_id")
    q = django_filters.CharFilter(field_name="subject", lookup_expr="icontains", max_length=200)
    since = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "family", "actor", "agent", "q", "since", "until"]
