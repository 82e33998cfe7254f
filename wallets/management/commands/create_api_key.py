"""python manage.py create_api_key --staff --name NAME | --agent AGENT_ID --name NAME"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from wallets.actors import Actor
from wallets.models import Agent
from wallets.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--staff", action="store_true", help="A staff key (acts on all agents).")
        who.add_argument("--agent", metavar="AGENT_ID", help="A key for this agent only.")
        parser.add_argument("--name", required=True, help="What the key is for (1-50 chars).")

    def handle(self, *args: Any, **options: Any) -> None:
        agent = None
        if options["agent"]:
            try:
                agent = Agent.objects.get(pk=uuid.UUID(options["agent"]))
            except (ValueError, Agent.DoesNotExist) as exc:
                raise CommandError(f"No agent with id {options['agent']!r}.") from exc
        try:
            key, raw_key = api_key_create(
                name=options["name"],
                agent=agent,
                created_by=Actor.system("manage.py create_api_key"),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stderr.write(
            f"Created {key.kind} key {key.prefix}… ({key.name}). It is shown once; store it now."
        )
        self.stdout.write(raw_key)
