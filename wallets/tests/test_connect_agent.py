"""manage.py connect_agent: a new agent, its key and its MCP configuration, at once."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from conftest import keyed_client


def test_an_agent_is_provisioned_with_its_mcp_configuration(
    transactional_db, django_db_serialized_rollback, settings, capsys
):
    # The embedded default's console mail must not land in the JSON.
    settings.EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    out = StringIO()
    call_command(
        "connect_agent", "--name", "claude-pr-bot", "--email", "lead@acme.dev",
        "--url", "https://wallet.acme.dev/", "--json", stdout=out,
    )  # fmt: skip
    assert "Verify your email" in capsys.readouterr().err
    config = json.loads(out.getvalue())

    stdio = config["stdio"]["mcpServers"]["agentwallet"]
    assert stdio["command"] == "agentwallet-mcp"
    assert stdio["env"] == {
        "AGENTWALLET_URL": "https://wallet.acme.dev",
        "AGENTWALLET_API_KEY": config["api_key"],
    }
    http = config["http"]["mcpServers"]["agentwallet"]
    assert http == {
        "type": "http",
        "url": "https://wallet.acme.dev/mcp",
        "headers": {"Authorization": f"Bearer {config['api_key']}"},
    }
    budget = keyed_client(config["api_key"]).get(f"/api/agents/{config['agent_id']}/budget")
    assert budget.status_code == 200
    assert config["principal"] == {
        "email": "lead@acme.dev",
        "email_verified": False,
        "unverified_charge_limit": "25.00",
    }


def test_the_text_says_how_charges_are_held_until_the_principal_verifies(db):
    out = StringIO()
    call_command("connect_agent", "--name", "bot", "--email", "new@acme.dev", stdout=out)
    assert "Until new@acme.dev follows the verification link" in out.getvalue()
    assert "held to 25.00 USD" in out.getvalue()


def test_an_unknown_policy_is_a_command_error(db):
    with pytest.raises(CommandError, match="No policy"):
        call_command("connect_agent", "--name", "x", "--email", "a@b.dev", "--policy", "nope")
