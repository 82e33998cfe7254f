"""The first hour in a fresh clone: `make run` leaves a local `.env` so that every README
command works afterwards, and the logs say what matters once."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
WRITE_LOCAL_ENV = ROOT / "scripts" / "write_local_env.py"
ENSURE_DATABASE = ROOT / "scripts" / "ensure_database.py"


def run(args, *, env=None, cwd=ROOT):
    return subprocess.run(  # noqa: S603 (this interpreter, the test's own arguments)
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=env if env is not None else {"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def read_env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


# --- The local .env -----------------------------------------------------------------


def test_the_local_env_has_debug_and_a_fresh_secret_key(tmp_path):
    result = run([WRITE_LOCAL_ENV, tmp_path / ".env"])
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    values = read_env_file(tmp_path / ".env")
    assert values["DEBUG"] == "1"
    assert len(values["SECRET_KEY"]) >= 50  # what check --deploy asks of a key
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600
    run([WRITE_LOCAL_ENV, tmp_path / "other.env"])
    assert read_env_file(tmp_path / "other.env")["SECRET_KEY"] != values["SECRET_KEY"]


def test_the_local_env_is_written_once(tmp_path):
    path = tmp_path / ".env"
    run([WRITE_LOCAL_ENV, path])
    first = path.read_text()
    again = run([WRITE_LOCAL_ENV, path])
    assert again.returncode == 0
    assert again.stdout == ""
    assert path.read_text() == first


def test_an_existing_env_file_is_never_overwritten(tmp_path):
    path = tmp_path / ".env"
    path.write_text("REDIS_URL=redis://127.0.0.1:6379/0\n")
    run([WRITE_LOCAL_ENV, path])
    assert path.read_text() == "REDIS_URL=redis://127.0.0.1:6379/0\n"


def test_settings_need_a_secret_key_until_the_local_env_exists(tmp_path):
    """The settings file in a checkout of its own: without .env and with DEBUG off it
    refuses to start (production); once `make run` wrote .env it starts in DEBUG."""
    (tmp_path / "agentwallet").mkdir()
    (tmp_path / "agentwallet" / "__init__.py").write_text("")
    shutil.copy(ROOT / "agentwallet" / "settings.py", tmp_path / "agentwallet" / "settings.py")
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path)}
    probe = ["-c", "from agentwallet import settings as s; print(s.DEBUG, s.SECRET_KEY)"]

    refused = run(probe, env=env, cwd=tmp_path)
    assert refused.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in refused.stderr

    run([WRITE_LOCAL_ENV, tmp_path / ".env"])
    started = run(probe, env=env, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["True", read_env_file(tmp_path / ".env")["SECRET_KEY"]]

    # The real environment wins over the file.
    production = run(probe, env={**env, "DEBUG": "0", "SECRET_KEY": "k" * 50}, cwd=tmp_path)
    assert production.stdout.split() == ["False", "k" * 50]


def test_make_run_writes_the_local_env_before_it_runs_anything():
    make = shutil.which("make")
    assert make, "make is needed for `make run`"
    result = subprocess.run(  # noqa: S603 (make, a dry run)
        [make, "-n", "run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    writes = next(i for i, line in enumerate(lines) if "scripts/write_local_env.py" in line)
    migrates = next(i for i, line in enumerate(lines) if "manage.py migrate" in line)
    assert writes < migrates


# --- Logs say it once ---------------------------------------------------------------


def test_a_request_warning_is_printed_once():
    """Django's own console handler used to print it, and then the root handler again."""
    result = run(
        [
            "-c",
            "import django, logging; django.setup(); "
            "logging.getLogger('django.request').warning('Not Found: /probe-404')",
        ],
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
            "DEBUG": "1",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Not Found: /probe-404") == 1
    assert "WARNING django.request" in result.stderr


def test_log_level_quiets_djangos_own_records_too():
    result = run(
        [
            "-c",
            "import django, logging; django.setup(); "
            "logging.getLogger('django.server').info('GET /probe 200'); "
            "logging.getLogger('django.request').warning('Not Found: /probe-404')",
        ],
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
            "DEBUG": "1",
            "LOG_LEVEL": "WARNING",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "GET /probe 200" not in result.stderr
    assert result.stderr.count("Not Found: /probe-404") == 1


class Records(logging.Handler):
    """Collects what the configured loggers let through, changing no level."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged():
    handler = Records()
    logging.getLogger().addHandler(handler)
    yield handler.records
    logging.getLogger().removeHandler(handler)


def test_an_eager_task_that_succeeds_logs_nothing(db, logged):
    from ledger.tasks import expire_holds_task

    assert expire_holds_task.delay().get() == 0
    assert [r.getMessage() for r in logged if r.name.startswith(("celery", "kombu"))] == []


def test_an_eager_task_that_fails_is_still_logged(db, logged, monkeypatch):
    from agentwallet.celery import app
    from ledger.tasks import expire_holds_task

    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr("ledger.tasks.holds_expire", broken)
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)
    expire_holds_task.delay()
    errors = [r for r in logged if r.name == "celery.app.trace" and r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "boom" in errors[0].getMessage()


def test_the_embedded_broker_names_its_host(logged):
    from agentwallet.celery import app

    assert app.connection_for_write().info()["hostname"] == "localhost"
    assert [r.getMessage() for r in logged if r.name.startswith("kombu")] == []


# --- /favicon.ico -------------------------------------------------------------------


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO header
    assert "max-age=604800" in response["Cache-Control"]


def test_the_favicon_answers_only_reads(client):
    assert client.post("/favicon.ico").status_code == 405


# --- make test's database -----------------------------------------------------------


def test_a_sqlite_database_url_needs_nothing_created(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    result = run([ENSURE_DATABASE], env={"PATH": os.environ["PATH"], "DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "db.sqlite3").exists()


def test_make_tests_postgres_database_is_created_when_missing(requires_postgres, settings):
    """makemigrations --check then reads a real (empty) history instead of warning."""
    server = settings.DATABASES["default"]
    name = f"agentwallet_ensure_{uuid.uuid4().hex[:8]}"
    connect = {
        "host": server["HOST"] or "127.0.0.1",
        "port": server["PORT"] or 5432,
        "user": server["USER"],
        "password": server["PASSWORD"] or None,
    }
    password = f":{connect['password']}" if connect["password"] else ""
    url = f"postgres://{connect['user']}{password}@{connect['host']}:{connect['port']}/{name}"
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": url}
    try:
        created = run([ENSURE_DATABASE], env=env)
        assert created.stdout.strip() == f"created database {name}", created.stderr
        again = run([ENSURE_DATABASE], env=env)
        assert (again.returncode, again.stdout) == (0, "")
        with psycopg.connect(dbname="postgres", **connect) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            assert found.fetchone() == (1,)
        check = run(
            ["manage.py", "makemigrations", "--check", "--dry-run"],
            env={**env, "DEBUG": "1"},
        )
        assert "RuntimeWarning" not in check.stderr
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **connect) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
