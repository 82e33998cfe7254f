"""python manage.py database_roles --owner OWNER --app APP [--print | --check]

The application role's privileges, applied or checked (docs/database-roles.md). Run it
as the owner after every `migrate`.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from ledger.immutability import (
    DatabaseRolesError,
    database_roles_apply,
    database_roles_problems,
    database_roles_sql,
)


class Command(BaseCommand):
    help = (
        "Give the application role SELECT, INSERT, UPDATE and DELETE on every table except "
        "the ledger's append-only ones (SELECT and INSERT) and django_migrations (SELECT), "
        "and make the tables the owner creates later start with SELECT and INSERT. "
        "Idempotent, in one transaction, checked before it commits: run it as the owner "
        "after every migrate."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", required=True, help="The role that owns the tables.")
        parser.add_argument("--app", required=True, help="The role the application logs in as.")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--print", action="store_true", help="Print the SQL (for psql) instead of running it."
        )
        mode.add_argument(
            "--check", action="store_true", help="Change nothing; exit 1 unless the set-up holds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        roles = {"owner": options["owner"], "app": options["app"]}
        try:
            if options["print"]:
                self.stdout.write("BEGIN;")
                for statement in database_roles_sql(connection, **roles):
                    self.stdout.write(f"{statement};")
                self.stdout.write("COMMIT;")
                return
            if options["check"]:
                problems = database_roles_problems(connection, **roles)
                if problems:
                    raise DatabaseRolesError(problems)
                self.stdout.write(f"{roles['app']}: the set-up holds")
                return
            statements = database_roles_apply(connection, **roles)
        except DatabaseRolesError as error:
            for problem in error.problems:
                self.stderr.write(problem)
            raise CommandError(f"{len(error.problems)} problem(s); nothing was changed") from None
        self.stdout.write(f"{roles['app']}: applied {len(statements)} statements; the set-up holds")
