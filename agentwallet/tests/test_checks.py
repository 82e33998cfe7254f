"""`manage.py check --deploy` refuses settings that would break the card network or tie
the card key to SECRET_KEY (agentwallet/checks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.core.checks import ERROR, WARNING, run_checks

ROOT = Path(__file__).resolve().parents[2]


def deploy_messages():
    return {message.id: message for message in run_checks(include_deployment_checks=True)}


def test_an_empty_network_secret_is_a_deploy_error(settings):
    settings.AGENTWALLET_NETWORK_SECRET = ""
    message = deploy_messages()["agentwallet.E001"]
    assert message.level == ERROR
    assert "AGENTWALLET_NETWORK_SECRET" in message.msg


def test_a_network_secret_passes(settings):
    settings.AGENTWALLET_NETWORK_SECRET = "network-secret"
    assert "agentwallet.E001" not in deploy_messages()


def test_a_card_key_that_is_the_secret_key_is_a_deploy_warning(settings):
    settings.AGENTWALLET_CARD_KEY = settings.SECRET_KEY
    message = deploy_messages()["agentwallet.W001"]
    assert message.level == WARNING
    assert "AGENTWALLET_CARD_KEY" in message.msg


def test_a_separate_card_key_passes(settings):
    settings.AGENTWALLET_CARD_KEY = "card-" + "key-material-" * 4
    assert "agentwallet.W001" not in deploy_messages()


def test_the_checks_run_only_for_deployment(settings):
    settings.AGENTWALLET_NETWORK_SECRET = ""
    settings.AGENTWALLET_CARD_KEY = settings.SECRET_KEY
    ids = {message.id for message in run_checks()}
    assert not {"agentwallet.E001", "agentwallet.W001"} & ids


def test_check_deploy_fails_in_production_without_a_network_secret():
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
        "DEBUG": "0",
        "SECRET_KEY": "prod-" + "k3y-material-" * 5,
        "ALLOWED_HOSTS": "agentwallet.example.com",
        "DATABASE_URL": "sqlite:////tmp/deploy-check.sqlite3",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "agentwallet.E001" in output
    assert "agentwallet.W001" in output  # AGENTWALLET_CARD_KEY was left to its default


def test_an_x402_network_without_a_pinned_usdc_is_an_error(settings):
    settings.AGENTWALLET_X402_NETWORKS = ["eip155:84532", "eip155:1"]
    message = {m.id: m for m in run_checks()}["agentwallet.E002"]
    assert message.level == ERROR
    assert "eip155:1" in message.msg
    settings.AGENTWALLET_X402_NETWORKS = ["eip155:8453", "eip155:84532"]
    assert "agentwallet.E002" not in {m.id for m in run_checks()}
