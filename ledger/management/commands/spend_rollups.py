"""python manage.py spend_rollups [--rebuild | --check] [--grace SECONDS]: the portal's
spend rollups from the ledger (ledger.services.rollups)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.services.rollups import (
    ROLLUP_GRACE,
    spend_rollups_advance,
    spend_rollups_check,
    spend_rollups_rebuild,
)


class Command(BaseCommand):
    help = (
        "Fold the ledger's new entries into the spend rollups (what beat does every minute). "
        "--rebuild drops them and folds the whole ledger again; --check compares them with "
        "the ledger and exits 1 when they differ."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--rebuild", action="store_true", help="Fold the whole ledger again.")
        action.add_argument("--check", action="store_true", help="Compare only.")
        parser.add_argument(
            "--grace",
            type=int,
            default=int(ROLLUP_GRACE.total_seconds()),
            help="Leave entries posted in the last SECONDS to the tail (default %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["grace"] < 0:
            raise CommandError("--grace must be 0 or more seconds")
        grace = timedelta(seconds=options["grace"])
        if options["check"]:
            mismatches = spend_rollups_check()
            for mismatch in mismatches[:50]:
                self.stdout.write(
                    f"{mismatch.table} {mismatch.key}: rollup {mismatch.rolled_up}, "
                    f"ledger {mismatch.ledger}"
                )
            if mismatches:
                raise CommandError(f"{len(mismatches)} rollup row(s) differ from the ledger")
            self.stdout.write("spend rollups agree with the ledger")
            return
        if options["rebuild"]:
            self.stdout.write(f"rebuilt: folded {spend_rollups_rebuild(grace=grace)} entries")
            return
        self.stdout.write(f"folded {spend_rollups_advance(grace=grace)} entries")
