"""python manage.py rebuild_spend_counters: recompute the spend counters from the ledger."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from ledger.counters import counters_rebuild


class Command(BaseCommand):
    help = (
        "Recompute every spend counter from the ledger (the source of truth). Run it "
        "after changing a policy's time zone; it locks nothing else, so run it quietly."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            rows = counters_rebuild()
        self.stdout.write(f"rebuilt {rows} counter rows")
