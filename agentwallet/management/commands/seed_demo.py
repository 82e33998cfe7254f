"""python manage.py seed_demo: demo principals, policies, agents and cards (idempotent)."""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from agentwallet.demo import (
    DAYS,
    EXAMPLE_AMOUNT,
    EXAMPLE_TRACE,
    TRY_VENDOR,
    seed_demo_spend,
    seed_demo_x402,
    try_command,
    vendor_merchant,
)
from agentwallet.portal.selectors import ROLE_FINANCE, ROLE_LEAD, ROLE_VIEWER
from cards.models import Card, CardStatus
from ledger.fx import fx_rates_load
from ledger.models import Authorization, FxSnapshot
from ledger.selectors import trace_detail_for_actor
from ledger.services.reports import (
    sprint_calendar,
    sprint_current_first_day,
    sprint_report_build,
)
from ledger.services.rollups import spend_rollups_advance
from policies.models import Policy, Vendor
from policies.services import policy_create, policy_update
from wallets.actors import Actor
from wallets.models import Agent, ApiKey, ApiKeyKind, TeamLead, X402Payment
from wallets.services import agent_provision, api_key_create, principal_get_or_create

DEMO_POLICIES: list[dict[str, Any]] = [
    {
        "slug": "ci-tight",
        "name": "CI (tight)",
        "currency": "USD",
        "description": "For CI agents: small daily and per-PR budgets, no x402.",
        "daily_cap": Decimal("50"),
        "monthly_cap": Decimal("500"),
        "per_trace_cap": Decimal("5"),
        "per_authorization_cap": Decimal("25"),
        "velocity_per_hour": 30,
        "time_zone": "America/New_York",
        "default_vendors": ["openai", "github"],
        "vendor_caps": {"openai": Decimal("200")},
    },
    {
        "slug": "eu-infra",
        "name": "EU infrastructure",
        "currency": "EUR",
        "description": "Deploy agents on European hosts, capped in euros.",
        "daily_cap": Decimal("300"),
        "monthly_cap": Decimal("4000"),
        "per_trace_cap": Decimal("150"),
        "time_zone": "Europe/Berlin",
        "default_vendors": ["hetzner", "ovh", "github"],
        "vendor_caps": {"hetzner": Decimal("2500"), "ovh": Decimal("1000")},
    },
]

DEMO_AGENTS = [
    {
        "name": "claude-code-main",
        "principal_email": "alice@acme.dev",
        "principal_slack_user_id": "U0ALICE001",
        "policy": "starter",
    },
    {
        "name": "codex-refactor",
        "principal_email": "alice@acme.dev",
        "principal_slack_user_id": "U0ALICE001",
        "policy": "starter",
    },
    {
        "name": "ci-runner",
        "principal_email": "bob@acme.dev",
        "principal_slack_user_id": "U0BOB00001",
        "policy": "ci-tight",
    },
    {
        "name": "deploy-bot",
        "principal_email": "bob@acme.dev",
        "principal_slack_user_id": "U0BOB00001",
        "policy": "eu-infra",
    },
]


class Command(BaseCommand):
    help = "Load the demo data (safe to run again: nothing is duplicated)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--admin-password",
            default=os.environ.get("DEMO_ADMIN_PASSWORD", ""),
            help="Create (or reset) the portal superuser 'admin' with this password. "
            "Default: $DEMO_ADMIN_PASSWORD; none is created without one.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.system("seed_demo")
        vendors = {vendor.slug: vendor for vendor in Vendor.objects.all()}
        for spec in DEMO_POLICIES:
            if Policy.objects.filter(slug=spec["slug"]).exists():
                continue
            spec = dict(spec)
            spec["default_vendors"] = [vendors[slug] for slug in spec["default_vendors"]]
            spec["vendor_caps"] = {vendors[s]: amount for s, amount in spec["vendor_caps"].items()}
            final_velocity = spec.pop("velocity_per_hour", None)
            policy = policy_create(**spec, actor=actor)
            if final_velocity is not None:
                # A change by finance, so the policy page and the audit have history.
                policy_update(
                    policy=policy,
                    changes={"velocity_per_hour": final_velocity},
                    actor=Actor(label="user:finance", is_staff=False),
                )
            self.stdout.write(f"policy {spec['slug']}")

        for spec in DEMO_AGENTS:
            if Agent.objects.filter(
                name=spec["name"], principal__email=spec["principal_email"]
            ).exists():
                continue
            principal = principal_get_or_create(
                email=spec["principal_email"], slack_user_id=spec["principal_slack_user_id"]
            )
            if principal.email_verified_at is None:  # the demo's teams verified long ago
                principal.email_verified_at = timezone.now() - timedelta(days=DAYS)
                principal.save(update_fields=["email_verified_at"])
            provisioned = agent_provision(
                actor=actor,
                policy=Policy.objects.get(slug=spec["policy"]),
                **{key: value for key, value in spec.items() if key != "policy"},
            )
            agent = provisioned.agent
            card = _try_card(agent)
            merchant = vendor_merchant(card.vendor)
            self.stdout.write(
                f"agent {agent.name} ({agent.pk}) with {len(provisioned.cards)} cards; "
                f"API key (shown once): {provisioned.raw_key}\n"
                f"  try its {card.vendor.name} card {card.pk}: "
                f"--merchant {shlex.quote(merchant.name)} --mcc {merchant.mcc} "
                f"--merchant-id {merchant.network_id}"
            )

        if not FxSnapshot.objects.exists():
            snapshot = fx_rates_load()
            self.stdout.write(f"exchange rates of {snapshot.rates_date} loaded")
        if not Authorization.objects.exists():
            with _quiet("celery.app.trace"):  # one line per held Slack message otherwise
                summary = seed_demo_spend()
            declines = ", ".join(f"{reason} {n}" for reason, n in summary.declines.items())
            approvals = ", ".join(f"{status} {n}" for status, n in summary.approvals.items())
            self.stdout.write(
                f"{summary.decided} demo authorizations decided over {DAYS} days: "
                f"{summary.approved} approved; declined: {declines}\n"
                f"approval requests: {approvals}"
            )
            self._print_example()

        if not X402Payment.objects.exists():
            paid = seed_demo_x402()
            self.stdout.write(f"{paid} demo x402 payments (claude-code-main, USDC on Base Sepolia)")

        if not _staff_key_exists():
            _, raw_key = api_key_create(name="demo staff key", agent=None, created_by=actor)
            self.stdout.write(f"staff API key (shown once): {raw_key}")

        if options["admin_password"]:
            self._portal_users(options["admin_password"])
        # What beat does every minute (`make run` runs no beat); nothing writes meanwhile.
        spend_rollups_advance(grace=timedelta(0))
        # The current sprint's report so far, and the last one's (what beat builds when a
        # sprint ends), so that /reports/ shows the demo's spend.
        calendar = sprint_calendar()
        current = sprint_current_first_day(calendar, timezone.now())
        for first_day in (current - timedelta(days=calendar.length_days), current):
            if first_day >= calendar.first_day:
                sprint_report_build(first_day=first_day)
        self.stdout.write(self.style.SUCCESS("demo data loaded"))

    def _portal_users(self, password: str) -> None:
        """One portal user per role, all with the demo password: `admin` (superuser),
        `finance`, `viewer`, and `lead`, who leads claude-code-main's and
        codex-refactor's team."""
        users = get_user_model().objects
        admin, _ = users.get_or_create(username="admin", defaults={"email": "admin@acme.dev"})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(password)
        admin.save()
        for username, role in (
            ("finance", ROLE_FINANCE),
            ("lead", ROLE_LEAD),
            ("viewer", ROLE_VIEWER),
        ):
            user, _ = users.get_or_create(
                username=username, defaults={"email": f"{username}@acme.dev"}
            )
            user.set_password(password)
            user.save()
            user.groups.set([Group.objects.get(name=role)])
        lead = users.get(username="lead")
        for agent in Agent.objects.filter(name__in=["claude-code-main", "codex-refactor"]):
            TeamLead.objects.get_or_create(user=lead, principal_id=agent.principal_id)
        self.stdout.write(
            "portal users: admin (superuser), finance, lead (claude-code-main's and "
            "codex-refactor's team), viewer; the password as given"
        )

    def _print_example(self) -> None:
        """README's example: a charge on claude-code-main's open PR, and the same trace on
        deploy-bot's Hetzner card (capped in euros, so a budget of its own)."""
        claude = Agent.objects.select_related("policy").get(name="claude-code-main")
        deploy = Agent.objects.select_related("policy").get(name="deploy-bot")
        trace = trace_detail_for_actor(actor=Actor.system("seed_demo"), trace_id=EXAMPLE_TRACE)
        self.stdout.write(
            f"example trace {EXAMPLE_TRACE}: {claude.name} has spent {trace['spent']} of its "
            f"{claude.policy.per_trace_cap} per-PR cap on it. With the server running, try:"
        )
        for agent in (claude, deploy):
            command = try_command(
                card=_try_card(agent),
                amount=EXAMPLE_AMOUNT,
                currency=agent.policy.currency,
                trace=EXAMPLE_TRACE,
            )
            self.stdout.write(f"  {command}")


def _try_card(agent: Agent) -> Card:
    """The agent's standing card for the vendor it tries first."""
    return (
        Card.objects.select_related("vendor")
        .exclude(status=CardStatus.CLOSED)
        .get(agent=agent, vendor__slug=TRY_VENDOR[agent.name], is_ephemeral=False)
    )


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _staff_key_exists() -> bool:
    return ApiKey.objects.filter(kind=ApiKeyKind.STAFF, name="demo staff key").exists()
