from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from cards.models import Card
from wallets.models import Agent, ApiKey

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_answers_when_the_database_does(db, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_healthz_reports_redis_when_configured(db, client, settings):
    redis_url = os.environ.get("TEST_REDIS_URL")
    if not redis_url:
        pytest.skip("needs Redis (TEST_REDIS_URL)")
    settings.REDIS_URL = redis_url
    assert client.get("/healthz").json()["redis"] == "ok"
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    response = client.get("/healthz")
    assert response.status_code == 200  # authorizations never wait on Redis
    assert response.json()["redis"] == "unreachable"


def test_healthz_fails_when_the_database_does_not(client, monkeypatch):
    from django.db import DatabaseError, connection

    def broken_cursor(*args, **kwargs):
        raise DatabaseError("down")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    assert client.get("/healthz").status_code == 503


def test_check_deploy_passes_with_production_settings():
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
        "DEBUG": "0",
        "SECRET_KEY": "prod-" + "k3y-material-" * 5,
        "ALLOWED_HOSTS": "agentwallet.example.com",
        "DATABASE_URL": os.environ.get("DATABASE_URL", "sqlite:////tmp/deploy-check.sqlite3"),
        "AGENTWALLET_CARD_KEY": "card-" + "key-material-" * 4,
        "AGENTWALLET_NETWORK_SECRET": "network-secret",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
        "DEBUG": "0",
        "SECRET_KEY": "",  # wins over a local .env that `make run` wrote
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_seed_demo_is_idempotent(db, capsys):
    call_command("seed_demo", "--admin-password", "pw-for-tests")
    counts = (Agent.objects.count(), Card.objects.count(), ApiKey.objects.count())
    assert counts[0] == 4
    assert counts[1] > 10
    call_command("seed_demo", "--admin-password", "pw-for-tests")
    assert (Agent.objects.count(), Card.objects.count(), ApiKey.objects.count()) == counts


def test_seed_demo_makes_a_portal_user_per_role(db, capsys):
    from django.contrib.auth.models import User
    from django.test import Client

    call_command("seed_demo", "--admin-password", "pw-for-tests")
    roles = {
        user.username: sorted(user.groups.values_list("name", flat=True))
        for user in User.objects.all()
    }
    assert roles == {
        "admin": [],
        "finance": ["Finance"],
        "lead": ["Engineering lead"],
        "viewer": ["Viewer"],
    }
    assert User.objects.get(username="admin").is_superuser
    lead = Client()
    assert lead.login(username="lead", password="pw-for-tests")
    page = lead.get("/").content.decode()
    assert "claude-code-main" in page
    assert "deploy-bot" not in page  # another team's agent


def test_the_wsgi_entry_point_keeps_what_it_loaded_out_of_full_collections():
    import gc

    from agentwallet import wsgi

    assert callable(wsgi.application)
    assert gc.get_freeze_count() > 10_000


def test_the_wsgi_application_loads_every_view_before_its_first_request():
    """A worker's first request may be a card authorization under its deadline: it must
    not spend half a second importing the views (and the stripe package) first."""
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
        "DEBUG": "1",
        "DATABASE_URL": "sqlite:////tmp/wsgi-load.sqlite3",
    }
    probe = (
        "import sys, agentwallet.wsgi; "
        "print(all(m in sys.modules for m in "
        "('ledger.stripe_webhook', 'ledger.apis', 'wallets.x402.apis', 'stripe')))"
    )
    result = subprocess.run(  # noqa: S603 (this interpreter, the test's own arguments)
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
