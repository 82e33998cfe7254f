"""What keeps the ledger append-only: its trigger, and the database roles that keep the
application from switching the trigger off.

The trigger of migration 0002 refuses UPDATE, DELETE and TRUNCATE of ledger entries
whoever asks, except in maintenance mode (`set_ledger_maintenance`), which only the test
suite uses, to empty the table between tests; no application code path updates or
deletes ledger entries. But the table's owner can disable or drop the trigger, a
superuser can set session_replication_role = replica, and any role can turn maintenance
mode on. So in production the application connects as a role that owns nothing and
holds only SELECT and INSERT on the append-only tables (`database_roles_sql`, applied
by `manage.py database_roles`; docs/database-roles.md): PostgreSQL then refuses its
UPDATE, DELETE, TRUNCATE, ALTER and DROP before any trigger runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.db import DatabaseError, transaction
from django.db.migrations.recorder import MigrationRecorder
from psycopg import sql

# The tables the application role may only read and append to. A migration that adds
# an append-only model must add it here (and run `database_roles` after `migrate`, as
# every deploy does); until then its new table has SELECT and INSERT only anyway.
APPEND_ONLY_MODELS = ("ledger.LedgerEntry",)

APPEND_ONLY_PRIVILEGES = frozenset({"SELECT", "INSERT"})
READ_ONLY_PRIVILEGES = frozenset({"SELECT"})  # django_migrations: only `migrate` writes it
READ_WRITE_PRIVILEGES = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})
# The privileges a table can grant. The application never holds TRUNCATE (it empties a
# table without firing row triggers), TRIGGER or REFERENCES.
TABLE_PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
# Relation kinds `GRANT ... ON ALL TABLES` covers: tables, partitioned tables, views,
# materialized views, foreign tables.
TABLE_KINDS = ["r", "p", "v", "m", "f"]


def set_ledger_maintenance(connection: Any, *, enabled: bool) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT set_config('agentwallet.ledger_maintenance', %s, false)",
                ["on" if enabled else "off"],
            )
        elif connection.vendor == "sqlite":
            cursor.execute("UPDATE ledger_maintenance SET enabled = %s", [1 if enabled else 0])


def append_only_tables() -> list[str]:
    return sorted(apps.get_model(label)._meta.db_table for label in APPEND_ONLY_MODELS)


# The ledger_export view (ledger/0011) reads the ledger: the application only selects it.
LEDGER_EXPORT_VIEW = "ledger_export"


def _read_only_tables() -> list[str]:
    return [MigrationRecorder.Migration._meta.db_table, LEDGER_EXPORT_VIEW]


def _expected_privileges(table: str) -> frozenset[str]:
    if table in append_only_tables():
        return APPEND_ONLY_PRIVILEGES
    if table in _read_only_tables():
        return READ_ONLY_PRIVILEGES
    return READ_WRITE_PRIVILEGES


class DatabaseRolesError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def database_roles_sql(connection: Any, *, owner: str, app: str) -> list[str]:
    """The statements that give `app` exactly its privileges in the schema the tables
    are in, and make the tables `owner` creates later start with SELECT and INSERT only.

    Everything is first revoked and then granted, so one run in one transaction leaves
    the same privileges whatever there were before: re-run it after every `migrate`.
    """
    schema = _current_schema(connection)

    def statement(template: str, **more: str) -> str:
        names = {"schema": schema, "owner": owner, "app": app, **more}
        identifiers = {key: sql.Identifier(name) for key, name in names.items()}
        return sql.SQL(template).format(**identifiers).as_string(None)

    defaults = "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}"
    return [
        statement("GRANT USAGE ON SCHEMA {schema} TO {app}"),
        statement("REVOKE CREATE ON SCHEMA {schema} FROM {app}"),
        statement("REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {app}"),
        statement("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app}"),
        *(
            statement("REVOKE UPDATE, DELETE ON {schema}.{table} FROM {app}", table=table)
            for table in append_only_tables()
        ),
        *(
            statement("REVOKE INSERT, UPDATE, DELETE ON {schema}.{table} FROM {app}", table=table)
            for table in _read_only_tables()
        ),
        statement("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {app}"),
        statement("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app}"),
        # A table a later migration creates is append-only until this runs again.
        statement(f"{defaults} REVOKE ALL ON TABLES FROM {{app}}"),
        statement(f"{defaults} GRANT SELECT, INSERT ON TABLES TO {{app}}"),
        statement(f"{defaults} REVOKE ALL ON SEQUENCES FROM {{app}}"),
        statement(f"{defaults} GRANT USAGE, SELECT ON SEQUENCES TO {{app}}"),
    ]


def database_roles_apply(connection: Any, *, owner: str, app: str) -> list[str]:
    """Run `database_roles_sql` in one transaction, then check the outcome with
    `database_roles_problems`; any problem rolls it all back (DatabaseRolesError)."""
    statements = database_roles_sql(connection, owner=owner, app=app)
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
            problems = database_roles_problems(connection, owner=owner, app=app)
            if problems:
                raise DatabaseRolesError(problems)
    except DatabaseError as error:  # e.g. the owner does not own a table: say why
        raise DatabaseRolesError(
            [str(error).strip(), *database_roles_problems(connection, owner=owner, app=app)]
        ) from error
    return statements


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    owner: str
    app_acts_as_owner: bool
    granted: frozenset[str]


def database_roles_problems(connection: Any, *, owner: str, app: str) -> list[str]:
    """What makes the set-up fall short, as sentences (empty when it holds): `app` must
    log in, be no superuser and act as none, create no roles, own or act as the owner of
    no table, create nothing in the schema, have exactly its privileges on every table
    (whether granted to it, to PUBLIC or to a role it belongs to), start later tables
    with SELECT and INSERT only, and be unable to set session_replication_role."""
    schema = _current_schema(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolname, rolcanlogin, rolcreaterole FROM pg_roles WHERE rolname IN (%s, %s)",
            [owner, app],
        )
        roles = {name: (can_login, create_role) for name, can_login, create_role in cursor}
        missing = [name for name in (owner, app) if name not in roles]
        if missing:
            return [f"role {name} does not exist" for name in missing]
        if owner == app:
            return [f"the application role must not be the owner ({owner})"]
        problems = []
        can_login, create_role = roles[app]
        if not can_login:
            problems.append(f"{app} cannot log in (ALTER ROLE {app} LOGIN)")
        if create_role:
            problems.append(f"{app} can create roles (ALTER ROLE {app} NOCREATEROLE)")
        cursor.execute(
            "SELECT rolname FROM pg_roles WHERE rolsuper AND pg_has_role(%s, oid, 'MEMBER')",
            [app],
        )
        problems += [f"{app} is or can become the superuser {name}" for (name,) in cursor]
        cursor.execute(
            "SELECT has_schema_privilege(%(app)s, %(schema)s, 'CREATE'),"
            " has_schema_privilege(%(app)s, %(schema)s, 'USAGE')",
            {"app": app, "schema": schema},
        )
        can_create, can_use = cursor.fetchone()
        if can_create:
            problems.append(
                f"{app} can create objects in schema {schema}"
                f" (REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC)"
            )
        if not can_use:
            problems.append(f"{app} cannot use schema {schema}")
        if connection.pg_version >= 150000:  # GRANT SET ON PARAMETER exists since 15
            cursor.execute(
                "SELECT has_parameter_privilege(%s, 'session_replication_role', 'SET')", [app]
            )
            if cursor.fetchone()[0]:
                problems.append(f"{app} can set session_replication_role")
        tables = _tables(cursor, schema=schema, app=app)
    names = {table.name for table in tables}
    problems += [
        f"table {table} does not exist (run migrate)"
        for table in append_only_tables()
        if table not in names
    ]
    for table in tables:
        if table.owner != owner:
            problems.append(f"table {table.name} is owned by {table.owner}, not {owner}")
        if table.app_acts_as_owner:
            problems.append(f"{app} can act as {table.owner}, the owner of {table.name}")
        expected = _expected_privileges(table.name)
        if table.granted != expected:
            problems.append(
                f"{app} has {_listed(table.granted)} on {table.name}, expected {_listed(expected)}"
            )
    later = _default_table_privileges(connection, owner=owner, schema=schema, app=app)
    if later != APPEND_ONLY_PRIVILEGES:
        problems.append(
            f"tables {owner} creates later give {app} {_listed(later)},"
            f" expected {_listed(APPEND_ONLY_PRIVILEGES)}"
        )
    return problems


def _current_schema(connection: Any) -> str:
    if connection.vendor != "postgresql":
        raise DatabaseRolesError([f"database roles are for PostgreSQL, not {connection.vendor}"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return str(cursor.fetchone()[0])


def _tables(cursor: Any, *, schema: str, app: str) -> list[_Table]:
    cursor.execute(
        "SELECT c.relname, pg_get_userbyid(c.relowner), pg_has_role(%(app)s, c.relowner,"
        " 'MEMBER'), ARRAY(SELECT p FROM unnest(%(privileges)s::text[]) p"
        " WHERE has_table_privilege(%(app)s, c.oid, p))"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %(schema)s AND c.relkind = ANY(%(kinds)s) ORDER BY c.relname",
        {"app": app, "schema": schema, "kinds": TABLE_KINDS, "privileges": TABLE_PRIVILEGES},
    )
    return [
        _Table(name=name, owner=owner, app_acts_as_owner=acts_as_owner, granted=frozenset(held))
        for name, owner, acts_as_owner, held in cursor.fetchall()
    ]


def _default_table_privileges(connection: Any, *, owner: str, schema: str, app: str) -> set[str]:
    """What a table `owner` creates in `schema` gives `app` (directly or through PUBLIC),
    from the owner's default privileges for that schema and for every schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT acl.privilege_type FROM pg_default_acl d"
            " CROSS JOIN LATERAL aclexplode(d.defaclacl) acl"
            " WHERE d.defaclrole = to_regrole(%(owner)s) AND d.defaclobjtype = 'r'"
            " AND (d.defaclnamespace = 0 OR d.defaclnamespace = to_regnamespace(%(schema)s))"
            " AND acl.grantee IN (0, to_regrole(%(app)s))",
            {"owner": owner, "schema": schema, "app": app},
        )
        return {privilege for (privilege,) in cursor}


def _listed(privileges: frozenset[str] | set[str]) -> str:
    ordered = [p for p in TABLE_PRIVILEGES if p in privileges]
    return ", ".join(ordered) if ordered else "nothing"
