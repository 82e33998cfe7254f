"""python manage.py load_fx_rates [--source PATH_OR_URL]: load the ECB reference rates."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.fx import FxError, fx_rates_age, fx_rates_load


class Command(BaseCommand):
    help = (
        "Load exchange rates (ECB daily CSV, or its zip) into djmoney's exchange tables. "
        "Default: AGENTWALLET_FX_URL when set, else the file the project ships."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--source", default="", help="A file path or an http(s) URL.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            snapshot = fx_rates_load(source=options["source"] or None)
        except (OSError, FxError) as exc:
            raise CommandError(f"Could not load rates: {exc}") from exc
        self.stdout.write(
            f"loaded {snapshot.currencies} rates for {snapshot.rates_date} from {snapshot.source}"
        )
        age = fx_rates_age(snapshot.rates_date)
        if age.stale:
            self.stderr.write(age.warning)
