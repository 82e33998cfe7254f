"""python manage.py export_ledger OUTPUT [--format csv|jsonl] [--group-by trace,vendor]
[--agent ID] [--card ID] [--vendor SLUG] [--trace-id ID] [--rail card|usdc] [--kind KIND]
[--flag FLAG] [--since ISO] [--until ISO]: what GET /api/ledger/export streams, written
to a file (the whole ledger, as staff), with a progress bar on stderr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from ledger.exports import GROUP_KEYS
from ledger.selectors import InvalidExport, ledger_export_for_actor
from wallets.actors import Actor

FILTERS = ("agent", "card", "vendor", "trace_id", "rail", "kind", "flag", "since", "until")


class Command(BaseCommand):
    help = "Write the ledger export (CSV or JSON lines, entries or sums per group) to a file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("output", type=Path, help="The file to write (replaced).")
        parser.add_argument(
            "--format",
            choices=("csv", "jsonl"),
            default=None,
            help="Default: from OUTPUT's suffix, else csv.",
        )
        parser.add_argument(
            "--group-by",
            dest="group_by",
            default=None,
            help=f"Sums per group: keys among {', '.join(GROUP_KEYS)}.",
        )
        for name in FILTERS:
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        output: Path = options["output"]
        export_format = options["format"] or ("jsonl" if output.suffix == ".jsonl" else "csv")
        params = {name: options[name] for name in (*FILTERS, "group_by") if options[name]}
        try:
            export = ledger_export_for_actor(actor=Actor.system("export_ledger"), params=params)
        except InvalidExport as exc:
            problems = "; ".join(
                f"{name}: {' '.join(errors)}" for name, errors in exc.errors.items()
            )
            raise CommandError(problems) from None
        # Entries have a known count; groups are counted as they come.
        total = None if export.group_by else export.entries.count()
        unit = "groups" if export.group_by else "entries"
        blocks = export.jsonl() if export_format == "jsonl" else export.csv()
        header = 0 if export_format == "jsonl" else 1
        written = 0
        partial = output.with_name(output.name + ".partial")
        with (
            partial.open("wb") as file,
            # On the terminal only (disable=None: off when stderr is not a TTY).
            tqdm(total=total, unit=f" {unit}", file=sys.stderr, disable=None) as bar,
        ):
            for block in blocks:
                file.write(block)
                lines = block.count(b"\n") - header
                header = 0
                written += lines
                bar.update(lines)
        partial.replace(output)  # a failed export leaves no half file under the name
        self.stdout.write(f"wrote {written:,} {unit} to {output}")
