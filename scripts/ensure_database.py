#!/usr/bin/env python3
"""Create the PostgreSQL database that DATABASE_URL names when it does not exist yet.

scripts/test.sh runs `makemigrations --check`, which reads that database's migration
history and warns when it cannot connect; the suite itself creates its own test
database. Nothing happens for SQLite or a database that exists. Creation needs the
CREATEDB privilege the test run needs anyway; without it, this says so and the run goes
on.
"""

from __future__ import annotations

import os
import sys

import environ
import psycopg
from psycopg import sql


def ensure_database(url: str) -> str:
    """Create the database `url` names when missing; say what was done."""
    config = environ.Env.db_url_config(url)
    if config["ENGINE"] != "django.db.backends.postgresql":
        return "not PostgreSQL: nothing to create"
    name = config["NAME"]
    params = {
        "host": config.get("HOST") or None,
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, connect_timeout=5, **params) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return f"database {name} exists"
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return f"created database {name}"


def main() -> int:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        return 0
    try:
        said = ensure_database(url)
    except psycopg.Error as exc:
        print(f"could not create the database of DATABASE_URL: {exc}", file=sys.stderr)
        return 0
    if said.startswith("created"):
        print(said)
    return 0


if __name__ == "__main__":
    sys.exit(main())
