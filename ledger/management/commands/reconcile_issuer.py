"""python manage.py reconcile_issuer [--day YYYY-MM-DD]: hold a UTC day (yesterday by
default) of the card issuer's authorizations, transactions and cards against the ledger,
as beat does every night (ledger.services.reconciliation). Exits 1 on mismatches."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cards.issuers import IssuerError
from ledger.services.reconciliation import issuer_reconcile, yesterday_utc


class Command(BaseCommand):
    help = "Reconcile a UTC day (yesterday by default) of the card issuer with the ledger."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--day", help="The UTC day to reconcile (YYYY-MM-DD).")

    def handle(self, *args: Any, **options: Any) -> None:
        day = yesterday_utc()
        if options["day"]:
            try:
                day = date.fromisoformat(options["day"])
            except ValueError:
                raise CommandError(f"--day {options['day']!r} is not a YYYY-MM-DD date") from None
        try:
            run = issuer_reconcile(day=day)
        except IssuerError as exc:
            raise CommandError(str(exc)) from None
        if run is None:
            self.stdout.write("The sandbox issuer keeps no records of its own: nothing to do.")
            return
        self.stdout.write(
            f"{run.issuer} {run.day}: {run.authorizations} authorizations, "
            f"{run.transactions} transactions, {run.cards} cards; "
            f"{len(run.mismatches)} mismatches"
        )
        for mismatch in run.mismatches:
            self.stdout.write(f"  {mismatch['kind']} {mismatch['object_id']}: {mismatch['detail']}")
        if run.mismatches:
            raise SystemExit(1)
