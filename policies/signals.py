"""Signals of the policies app, for caches kept elsewhere (STYLE: signals only invalidate)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the transaction that changes a policy's time zone, with `policy` and
# `old_time_zone`: the ledger's month counters are cut in that zone.
policy_time_zone_changed = Signal()
