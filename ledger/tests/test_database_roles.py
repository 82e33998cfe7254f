"""The production database roles (docs/database-roles.md): the application role appends
to the ledger and runs the money path, and PostgreSQL refuses it everything that would
rewrite the ledger or switch its immutability off.

The test database is created and migrated by the superuser; each test first hands it
and everything in it to a fresh owner role, as `CREATE DATABASE ... OWNER` and
`migrate` run as that role would have left it, and runs the command as that owner.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from io import StringIO
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connection, connections
from psycopg import errors

from conftest import card_for
from ledger import immutability
from ledger.models import LedgerEntry
from ledger.services import AuthorizationRequest, authorization_capture, authorization_decide

pytestmark = pytest.mark.postgres

PRIVILEGES = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
READ_WRITE = {"SELECT", "INSERT", "UPDATE", "DELETE"}


@dataclass(frozen=True)
class Roles:
    owner: str
    app: str


def _execute(statement: str, params: Any = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


@contextmanager
def _database_owned_by_new_roles() -> Iterator[Roles]:
    """Two new roles; the owner owns the test database, its tables and functions. At the
    end the superuser owns them again and both roles are dropped (roles are cluster-wide:
    none may outlive the test)."""
    suffix = uuid.uuid4().hex[:12]
    roles = Roles(owner=f"aw_test_owner_{suffix}", app=f"aw_test_app_{suffix}")
    [(admin,)] = _execute("SELECT current_user")
    _execute(f"CREATE ROLE {roles.owner} LOGIN")
    _execute(f"CREATE ROLE {roles.app} LOGIN")
    try:
        _execute(f'ALTER DATABASE "{connection.settings_dict["NAME"]}" OWNER TO {roles.owner}')
        for table, kind in _execute(
            "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relkind IN ('r', 'p', 'v')"
        ):
            what = "VIEW" if kind == "v" else "TABLE"
            _execute(f'ALTER {what} public."{table}" OWNER TO {roles.owner}')
        for (routine,) in _execute(
            "SELECT oid::regprocedure::text FROM pg_proc"
            " WHERE pronamespace = 'public'::regnamespace"
        ):
            _execute(f"ALTER ROUTINE {routine} OWNER TO {roles.owner}")
        yield roles
    finally:
        _execute(f"REASSIGN OWNED BY {roles.owner} TO {admin}")
        _execute(f"DROP OWNED BY {roles.app}")  # its privileges and default privileges
        _execute(f"DROP OWNED BY {roles.owner}")
        _execute(f"DROP ROLE {roles.app}")
        _execute(f"DROP ROLE {roles.owner}")


@contextmanager
def _as(role: str) -> Iterator[None]:
    """This connection acts with `role`'s privileges only (the superuser stays the
    session's user, to put things back)."""
    _execute(f"SET ROLE {role}")
    try:
        yield
    finally:
        _execute("RESET ROLE")


def _database_roles(roles: Roles, *args: str) -> str:
    """Run the command as the owner, as the docs say; what it printed."""
    out = StringIO()
    with _as(roles.owner):
        call_command(
            "database_roles", "--owner", roles.owner, "--app", roles.app, *args,
            stdout=out, stderr=StringIO(),
        )  # fmt: skip
    return out.getvalue()


def _privileges(role: str, table: str) -> set[str]:
    return {
        privilege
        for privilege in PRIVILEGES
        if _execute("SELECT has_table_privilege(%s, %s, %s)", [role, table, privilege])[0][0]
    }


def _acls() -> list[tuple[Any, ...]]:
    """Every privilege in the database as the catalogs hold them."""
    return _execute(
        "SELECT 'table', relname, relacl::text FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace"
        " UNION ALL SELECT 'schema', nspname, nspacl::text FROM pg_namespace"
        " UNION ALL SELECT 'default', defaclobjtype::text, defaclacl::text FROM pg_default_acl"
        " ORDER BY 1, 2, 3"
    )


@pytest.fixture
def roles(db: None, requires_postgres: None) -> Iterator[Roles]:
    """Inside the test's transaction: rolled back with it."""
    with _database_owned_by_new_roles() as roles:
        yield roles


# --- the command ------------------------------------------------------------------


def test_the_app_role_gets_select_and_insert_only_on_the_ledger(roles):
    assert _privileges(roles.app, "ledger_ledgerentry") == set()
    _database_roles(roles)

    assert _privileges(roles.app, "ledger_ledgerentry") == {"SELECT", "INSERT"}
    assert _privileges(roles.app, "django_migrations") == {"SELECT"}
    for table in (
        "ledger_authorization",
        "ledger_spendcounter",  # upserted by every decision
        "ledger_tracebudget",
        "wallets_agent",
        "cards_card",
        "approvals_outboxmessage",
        "django_celery_beat_periodictask",  # beat writes its schedule's state
        "django_session",
    ):
        assert _privileges(roles.app, table) == READ_WRITE, table
    [(can_create, can_use)] = _execute(
        "SELECT has_schema_privilege(%(app)s, 'public', 'CREATE'),"
        " has_schema_privilege(%(app)s, 'public', 'USAGE')",
        {"app": roles.app},
    )
    assert (can_create, can_use) == (False, True)
    assert "the set-up holds" in _database_roles(roles, "--check")


def test_print_shows_the_sql_the_command_applies_and_changes_nothing(roles):
    printed = _database_roles(roles, "--print").splitlines()
    assert (printed[0], printed[-1]) == ("BEGIN;", "COMMIT;")
    assert _privileges(roles.app, "ledger_ledgerentry") == set()

    executed: list[str] = []

    def record(execute, sql, params, many, context):
        executed.append(sql)
        return execute(sql, params, many, context)

    with _as(roles.owner), connection.execute_wrapper(record):
        call_command(
            "database_roles", "--owner", roles.owner, "--app", roles.app, stdout=StringIO()
        )
    # Besides reads and its savepoint, the command ran exactly what it printed.
    changes = [sql for sql in executed if not sql.startswith(("SELECT", "SAVEPOINT", "RELEASE"))]
    assert changes == [line.removesuffix(";") for line in printed[1:-1]]


def test_running_the_command_again_changes_nothing(roles):
    _database_roles(roles)
    once = _acls()
    printed_once = _database_roles(roles, "--print")

    _database_roles(roles)
    assert _acls() == once
    assert _database_roles(roles, "--print") == printed_once


def test_a_rerun_takes_back_privileges_granted_by_hand(roles):
    _database_roles(roles)
    expected = _acls()
    with _as(roles.owner):
        _execute(f"GRANT UPDATE, TRUNCATE ON ledger_ledgerentry TO {roles.app}")
        _execute(f"GRANT ALL ON ledger_spendcounter TO {roles.app}")
        _execute(f"GRANT CREATE ON SCHEMA public TO {roles.app}")
        _execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {roles.app}")
    with pytest.raises(CommandError):
        _database_roles(roles, "--check")

    _database_roles(roles)
    assert _acls() == expected


def test_a_table_a_later_migration_creates_is_append_only_until_the_command_runs(roles):
    _database_roles(roles)
    with _as(roles.owner):  # as `migrate` would
        _execute("CREATE TABLE ledger_later (id bigint GENERATED BY DEFAULT AS IDENTITY)")
    assert _privileges(roles.app, "ledger_later") == {"SELECT", "INSERT"}
    with pytest.raises(CommandError):
        _database_roles(roles, "--check")

    _database_roles(roles)
    assert _privileges(roles.app, "ledger_later") == READ_WRITE


def test_a_table_listed_as_append_only_keeps_select_and_insert_only(roles, monkeypatch):
    listed = [*immutability.append_only_tables(), "ledger_later"]
    monkeypatch.setattr(immutability, "append_only_tables", lambda: sorted(listed))
    with _as(roles.owner):
        _execute("CREATE TABLE ledger_later (id bigint GENERATED BY DEFAULT AS IDENTITY)")

    _database_roles(roles)
    assert _privileges(roles.app, "ledger_later") == {"SELECT", "INSERT"}
    assert _privileges(roles.app, "ledger_ledgerentry") == {"SELECT", "INSERT"}


def test_a_privilege_through_public_fails_the_command_and_it_changes_nothing(roles):
    _database_roles(roles)
    _execute("GRANT UPDATE ON ledger_ledgerentry TO PUBLIC")  # not the app's own grant
    before = _acls()
    errors_out = StringIO()
    with _as(roles.owner), pytest.raises(CommandError, match="nothing was changed"):
        call_command(
            "database_roles", "--owner", roles.owner, "--app", roles.app, stderr=errors_out
        )
    assert f"{roles.app} has SELECT, INSERT, UPDATE on ledger_ledgerentry" in errors_out.getvalue()
    assert _acls() == before


@pytest.mark.parametrize(
    ("grant", "problem"),
    [
        ("GRANT {owner} TO {app}", "{app} can act as {owner}, the owner of ledger_ledgerentry"),
        ("ALTER ROLE {app} SUPERUSER", "{app} is or can become the superuser {app}"),
        ("ALTER ROLE {app} CREATEROLE", "{app} can create roles"),
        ("ALTER ROLE {app} NOLOGIN", "{app} cannot log in"),
        ("GRANT SET ON PARAMETER session_replication_role TO {app}", "{app} can set session_"),
        ("ALTER TABLE ledger_ledgerentry OWNER TO {admin}", "owned by {admin}, not {owner}"),
    ],
    ids=["member_of_owner", "superuser", "createrole", "nologin", "replication_role", "owner"],
)
def test_the_command_refuses_an_app_role_that_could_undo_it(roles, grant, problem):
    [(admin,)] = _execute("SELECT current_user")
    names = {"owner": roles.owner, "app": roles.app, "admin": admin}
    _execute(grant.format(**names))
    before = _acls()
    errors_out = StringIO()
    with _as(roles.owner), pytest.raises(CommandError):
        call_command(
            "database_roles", "--owner", roles.owner, "--app", roles.app, stderr=errors_out
        )
    assert problem.format(**names) in errors_out.getvalue()
    assert _acls() == before  # rolled back


# --- the application role, connected as itself --------------------------------------


@pytest.fixture
def committed_roles(
    transactional_db: None, django_db_serialized_rollback: None, requires_postgres: None
) -> Iterator[Roles]:
    """Committed, so that the application role's own connection sees them."""
    with _database_owned_by_new_roles() as roles:
        _database_roles(roles)
        yield roles


@pytest.fixture
def app_connection(committed_roles: Roles) -> Iterator[psycopg.Connection[Any]]:
    """The application role's own connection, in maintenance mode: the trigger would let
    updates and deletes through, so what refuses them below is PostgreSQL's privileges."""
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], dbname=settings["NAME"],
        user=committed_roles.app, autocommit=True,
    ) as app:  # fmt: skip
        app.execute("SELECT set_config('agentwallet.ledger_maintenance', 'on', false)")
        assert app.execute("SELECT current_user").fetchone() == (committed_roles.app,)
        yield app


def _charge(card: Any, amount: str) -> AuthorizationRequest:
    """A charge from the card's vendor as the network names it: no lock declines it."""
    return AuthorizationRequest(
        network_id=f"roles_{uuid.uuid4().hex}",
        card_id=str(card.pk),
        amount=Decimal(amount),
        currency="USD",
        merchant_mcc=card.allowed_mccs[0],
        merchant_name=next(iter(card.vendor.descriptors), ""),
        merchant_network_id=next(iter(card.vendor.network_ids), ""),
        trace_id="PR-ROLES",
    )


@pytest.fixture
def entry(committed_roles, alice) -> LedgerEntry:
    decided = authorization_decide(request=_charge(card_for(alice, "openai"), "5.00"))
    assert decided.authorization.decision == "approved"
    return LedgerEntry.objects.get()


def _ledger_as_it_stands() -> list[Any]:
    entries = list(LedgerEntry.objects.order_by("pk").values())
    triggers = _execute(
        "SELECT tgname, tgenabled FROM pg_trigger"
        " WHERE tgrelid = 'ledger_ledgerentry'::regclass AND NOT tgisinternal ORDER BY tgname"
    )
    return [entries, triggers]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_ledgerentry SET cap_cents = 1, memo = 'rewritten'",
        "DELETE FROM ledger_ledgerentry",
        "TRUNCATE ledger_ledgerentry",
        "ALTER TABLE ledger_ledgerentry DISABLE TRIGGER ledger_entry_no_update_or_delete",
        "DROP TRIGGER ledger_entry_no_update_or_delete ON ledger_ledgerentry",
        "SET session_replication_role = replica",
        "DROP TABLE ledger_ledgerentry CASCADE",
        "CREATE TABLE ledger_shadow (id bigint)",
        "SET ROLE {owner}",
    ],
    ids=[
        "update",
        "delete",
        "truncate",
        "disable_trigger",
        "drop_trigger",
        "session_replication_role",
        "drop_table",
        "create_table",
        "become_owner",
    ],
)
def test_postgresql_refuses_the_app_role(committed_roles, app_connection, entry, statement):
    before = _ledger_as_it_stands()
    assert len(before[0]) == 1
    assert [enabled for _, enabled in before[1]] == ["O", "O"]  # both triggers on

    with pytest.raises(errors.InsufficientPrivilege):
        app_connection.execute(statement.format(owner=committed_roles.owner))

    assert _ledger_as_it_stands() == before
    assert app_connection.execute("SHOW session_replication_role").fetchone() == ("origin",)
    assert app_connection.execute("SELECT current_user").fetchone() == (committed_roles.app,)


def test_the_app_role_appends_to_the_ledger_and_reads_it(app_connection, alice):
    [entry_id] = app_connection.execute(
        "INSERT INTO ledger_ledgerentry (kind, rail, flag, agent_id, trace_id, amount,"
        " amount_currency, cap_amount, cap_amount_currency, cap_cents, fx_rate, memo,"
        " created_at, effective_at) VALUES ('x402_payment', 'usdc', '', %s, 'PR-ROLES', 1.25,"
        " 'USD', 1.25, 'USD', 125, 1, 'appended by the app role', now(), now()) RETURNING id",
        [alice.agent.pk],
    ).fetchone()

    read = app_connection.execute(
        "SELECT memo, cap_cents FROM ledger_ledgerentry WHERE id = %s", [entry_id]
    ).fetchone()
    assert read == ("appended by the app role", 125)
    assert LedgerEntry.objects.get(pk=entry_id).agent_id == alice.agent.pk


def _in_a_thread_connected_as(role: str, work: Callable[[], Any]) -> Any:
    """`work()` in a thread whose default database connection logs in as `role`: the
    application code in it uses Django's default connection, as it does under gunicorn."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        base = connections[DEFAULT_DB_ALIAS]
        as_role = type(base)({**base.settings_dict, "USER": role, "PASSWORD": ""})
        connections[DEFAULT_DB_ALIAS] = as_role  # this thread's only
        try:
            outcome["value"] = work()
        except Exception as error:
            outcome["error"] = error
        finally:
            as_role.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_card_authorization_decided_as_the_app_role_is_approved_and_captured(
    committed_roles, alice
):
    card = card_for(alice, "openai")

    def decide_and_capture() -> tuple[Any, ...]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            [(user,)] = cursor.fetchall()
        decided = authorization_decide(request=_charge(card, "12.50")).authorization
        captured = authorization_capture(
            network_id=decided.network_id,
            amount=Decimal("12.50"),
            currency="USD",
            network_txn_id=f"cap_{uuid.uuid4().hex}",
        )
        return user, decided, captured

    user, decided, captured = _in_a_thread_connected_as(committed_roles.app, decide_and_capture)

    assert user == committed_roles.app
    assert (decided.decision, decided.reason) == ("approved", "")
    assert captured.hold_state == "closed"
    kinds = LedgerEntry.objects.filter(authorization_id=decided.pk).values_list("kind", flat=True)
    assert sorted(kinds) == ["capture", "hold", "release"]
