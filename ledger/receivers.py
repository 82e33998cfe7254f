"""The spend counters are a cache of the ledger; these keep it right when what it is cut
by changes elsewhere (connected in LedgerConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.dispatch import receiver
from django.utils import timezone

from ledger.services import month_counter_zones_keep
from ledger.tasks import recut_month_counters_task
from policies.models import Policy
from policies.signals import policy_time_zone_changed


@receiver(policy_time_zone_changed)
def month_counters_follow_policy_zone(
    sender: Any, *, policy: Policy, old_time_zone: str, **kwargs: Any
) -> None:
    """In the policy change's transaction: the agents keep counting months in the old
    zone; once it commits, their month counters are cut again off the request."""
    month_counter_zones_keep(policy=policy, time_zone=old_time_zone, now=timezone.now())
    transaction.on_commit(recut_month_counters_task.delay, robust=True)
