"""python manage.py connect_agent --name NAME --email EMAIL [--policy starter] [--url URL]

Provision an agent (its key and one card per default vendor of the policy) and print
what a coding agent needs to connect over MCP: the stdio server's `mcpServers` entry and
the streamable HTTP URL with its header. The key is shown once.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from policies.models import Policy
from wallets.actors import Actor
from wallets.services import agent_provision


def mcp_configuration(*, url: str, agent_id: str, raw_key: str) -> dict[str, Any]:
    """The two ways in: the stdio server (a console script of the client package) and
    streamable HTTP at /mcp, each as coding agents' `mcpServers` entries take them."""
    base = url.rstrip("/")
    return {
        "stdio": {
            "mcpServers": {
                "agentwallet": {
                    "command": "agentwallet-mcp",
                    "env": {"AGENTWALLET_URL": base, "AGENTWALLET_API_KEY": raw_key},
                }
            }
        },
        "http": {
            "mcpServers": {
                "agentwallet": {
                    "type": "http",
                    "url": f"{base}/mcp",
                    "headers": {"Authorization": f"Bearer {raw_key}"},
                }
            }
        },
        "claude_code": (
            f"claude mcp add --transport http agentwallet {base}/mcp "
            f'--header "Authorization: Bearer {raw_key}"'
        ),
        "agent_id": agent_id,
    }


class Command(BaseCommand):
    help = "Provision an agent and print its key and MCP configuration (shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="The agent's name, e.g. claude-pr-bot.")
        parser.add_argument("--email", required=True, help="The accountable principal's email.")
        parser.add_argument("--policy", default="starter", help="Policy slug (default starter).")
        parser.add_argument(
            "--url",
            default=settings.AGENTWALLET_PORTAL_URL,
            help="Where agents reach AgentWallet (default AGENTWALLET_PORTAL_URL).",
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            policy = Policy.objects.get(slug=options["policy"])
        except Policy.DoesNotExist as exc:
            raise CommandError(f"No policy {options['policy']!r}.") from exc
        try:
            # The principal's verification mail (the console backend's, in the embedded
            # default) goes to stderr: stdout is the configuration, --json parseable.
            with contextlib.redirect_stdout(sys.stderr):
                provisioned = agent_provision(
                    name=options["name"],
                    principal_email=options["email"],
                    policy=policy,
                    actor=Actor.system("manage.py connect_agent"),
                )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        agent = provisioned.agent
        config = mcp_configuration(
            url=options["url"], agent_id=str(agent.pk), raw_key=provisioned.raw_key
        )
        principal = agent.principal
        limit = policy.unverified_charge_limit
        held = not principal.email_verified and limit is not None
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    config
                    | {
                        "api_key": provisioned.raw_key,
                        "principal": {
                            "email": principal.email,
                            "email_verified": principal.email_verified,
                            "unverified_charge_limit": None if not held else f"{limit.amount}",
                        },
                    },
                    indent=2,
                )
            )
            return
        cards = ", ".join(card.card.vendor.slug for card in provisioned.cards) or "none"
        if held:
            self.stdout.write(
                f"Until {principal.email} follows the verification link mailed to them "
                f"(printed above, in the embedded mode), each card charge is held to "
                f"{limit.amount} {limit.currency}.\n"
            )
        self.stdout.write(
            f"Agent {agent.name} ({agent.pk}) on policy {policy.slug}; cards: {cards}.\n"
            f"API key (shown once): {provisioned.raw_key}\n\n"
            "MCP over stdio (pip install ./clients/python; Claude Desktop, Cursor, ...):\n"
            f"{json.dumps(config['stdio'], indent=2)}\n\n"
            "MCP over streamable HTTP:\n"
            f"{json.dumps(config['http'], indent=2)}\n\n"
            f"Claude Code:\n  {config['claude_code']}\n"
        )
