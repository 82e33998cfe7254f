#!/usr/bin/env bash
# The whole test suite: lint, migrations, OpenAPI schema, pytest.
# Uses $DATABASE_URL / $REDIS_URL when set; otherwise PostgreSQL and Redis on
# 127.0.0.1 when they answer, else SQLite (CI always sets PostgreSQL and Redis).
set -euo pipefail
cd "$(dirname "$0")/.."

answers() { python - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

if [ -z "${DATABASE_URL:-}" ] && answers 127.0.0.1 5432; then
  export DATABASE_URL="postgres://postgres@127.0.0.1:5432/agentwallet"
fi
if [ -z "${REDIS_URL:-}${TEST_REDIS_URL:-}" ] && answers 127.0.0.1 6379; then
  export TEST_REDIS_URL="redis://127.0.0.1:6379/15"
fi
export TEST_REDIS_URL="${TEST_REDIS_URL:-${REDIS_URL:-}}"
echo "database: ${DATABASE_URL:-sqlite (embedded)}; redis: ${TEST_REDIS_URL:-none}"

export DEBUG=1
ruff format --check .
ruff check .
# `makemigrations --check` reads the migration history of DATABASE_URL's database: create
# it when missing (a fresh machine), so the check reads a real one instead of warning.
python scripts/ensure_database.py
python manage.py makemigrations --check --dry-run
python manage.py spectacular --validate --fail-on-warn --file /dev/null
python -m pytest "$@"

# The embedded default (make run) is SQLite, where the ledger writes some rows with
# statements of its own: when the suite above ran on PostgreSQL, run the money paths
# on SQLite too (the tests that need PostgreSQL are left out, not skipped).
if [ $# -eq 0 ] && [[ "${DATABASE_URL:-}" == postgres* ]]; then
  echo "again on SQLite (embedded default): ledger and approvals"
  env -u DATABASE_URL DESELECT_POSTGRES_ONLY=1 python -m pytest -q ledger approvals
fi
