from __future__ import annotations

import django_filters

from ledger.models import EntryFlag, EntryKind, LedgerEntry, Rail


class LedgerEntryFilter(django_filters.FilterSet):
    agent = django_filters.UUIDFilter(field_name="agent_id")
    card = django_filters.UUIDFilter(field_name="card_id")
    vendor = django_filters.CharFilter(field_name="vendor__slug")
    trace_id = django_filters.CharFilter(field_name="trace_id")
    rail = django_filters.ChoiceFilter(choices=Rail.choices)
    kind = django_filters.ChoiceFilter(choices=EntryKind.choices)
    flag = django_filters.ChoiceFilter(choices=[c for c in EntryFlag.choices if c[0]])
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = LedgerEntry
        fields = ["agent", "card", "vendor", "trace_id", "rail", "kind", "flag", "since", "until"]
