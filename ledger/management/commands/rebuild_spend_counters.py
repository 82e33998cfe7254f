"""python manage.py rebuild_spend_counters [--check]: the spend counters from the ledger."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.services import counters_check, counters_rebuild


class Command(BaseCommand):
    help = (
        "Recompute every spend counter from the ledger (the source of truth), holding every "
        "agent's lock meanwhile (decisions wait). With --check, compare each agent's spend as "
        "its decisions read it before and after the rebuild, and roll the rebuild back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="Compare only; exit 1 when they differ."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["check"]:
            self.stdout.write(f"rebuilt {counters_rebuild()} counter rows")
            return
        mismatches = counters_check()
        for mismatch in mismatches:
            self.stdout.write(f"agent {mismatch.agent_id}:")
            self.stdout.write(f"  counters {mismatch.counted}")
            self.stdout.write(f"  ledger   {mismatch.rebuilt}")
        if mismatches:
            raise CommandError(f"{len(mismatches)} agent(s) whose counters differ from the ledger")
        self.stdout.write("counters agree with the ledger")
