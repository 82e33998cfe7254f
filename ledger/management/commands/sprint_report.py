"""python manage.py sprint_report [--day YYYY-MM-DD | --last]: build (again) the report of
the sprint a day falls in (today's by default, so far; --last: the sprint before), as
beat does when a sprint ends (ledger.services.reports)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from ledger.services.reports import (
    sprint_calendar,
    sprint_current_first_day,
    sprint_first_day,
    sprint_report_build,
)


class Command(BaseCommand):
    help = "Build the sprint report of a day's sprint (today's by default, or --last)."

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--day", help="A day in the sprint (YYYY-MM-DD, local).")
        which.add_argument("--last", action="store_true", help="The sprint before this one.")

    def handle(self, *args: Any, **options: Any) -> None:
        calendar = sprint_calendar()
        first_day = sprint_current_first_day(calendar, timezone.now())
        if options["day"]:
            try:
                first_day = sprint_first_day(calendar, date.fromisoformat(options["day"]))
            except ValueError:
                raise CommandError(f"--day {options['day']!r} is not a YYYY-MM-DD date") from None
        elif options["last"]:
            first_day -= timedelta(days=calendar.length_days)
        report = sprint_report_build(first_day=first_day)
        state = "complete" if report.figures["complete"] else "so far"
        self.stdout.write(f"sprint of {report.first_day} ({state}): report {report.pk}")
        for currency, figures in report.figures["currencies"].items():
            self.stdout.write(
                f"  {figures['spent']['amount']} {currency} spent, "
                f"{figures['concentration']['share_percent']}% by the top "
                f"{figures['concentration']['top_traces']} trace(s), "
                f"{figures['unattributed']['amount']} {currency} on no trace"
            )
