"""Writes for principals, agents, API keys and trace context."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from agentwallet.audit import audit_record, card_subject
from agentwallet.models import AuditAction
from cards.services import NewCard, cards_issue_for_new_agent, issuer_compensation
from policies.models import Policy, Vendor
from wallets.actors import Actor
from wallets.models import Agent, ApiKey, ApiKeyKind, Principal
from wallets.verification import verification_send
from wallets.x402.keys import wallet_create

TRACE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/#@+-]{0,127}$")
MAX_TRACE_TTL_SECONDS = 30 * 24 * 3600


def validate_trace_id(trace_id: str) -> str:
    if not TRACE_ID_PATTERN.fullmatch(trace_id):
        raise ValidationError(
            {"trace_id": "Use 1-128 letters, digits and ._:/#@+- (for example PR-4823)."}
        )
    return trace_id


@dataclass(frozen=True, repr=False)
class ProvisionedAgent:
    agent: Agent
    api_key: ApiKey
    raw_key: str  # shown once
    cards: list[NewCard] = field(default_factory=list)


def principal_get_or_create(*, email: str, slack_user_id: str = "", name: str = "") -> Principal:
    email = email.strip().lower()
    validate_email(email)
    principal = Principal.objects.filter(email=email).first()
    if principal is None:
        principal = Principal(email=email, slack_user_id=slack_user_id, name=name)
        principal.clean_fields()
        try:
            with transaction.atomic():
                principal.save(force_insert=True)
        except IntegrityError as exc:
            raise ValidationError(
                {"principal_slack_user_id": "That Slack user belongs to another principal."}
            ) from exc
    elif slack_user_id and principal.slack_user_id != slack_user_id:
        if Principal.objects.filter(slack_user_id=slack_user_id).exclude(pk=principal.pk).exists():
            raise ValidationError(
                {"principal_slack_user_id": "That Slack user belongs to another principal."}
            )
        principal.slack_user_id = slack_user_id
        principal.save(update_fields=["slack_user_id"])
    return principal


def api_key_create(
    *, name: str, agent: Agent | None, created_by: Actor, audit: bool = True
) -> tuple[ApiKey, str]:
    """Create a key; the raw key is returned once and only its hash is stored.
    `audit=False` when the caller's own audit row covers it (provisioning)."""
    name = name.strip()
    if not name or len(name) > 50:
        raise ValidationError({"name": "A key needs a name of 1-50 characters."})
    kind = ApiKeyKind.STAFF if agent is None else ApiKeyKind.AGENT
    api_key = ApiKey(name=name, kind=kind, agent=agent, created_by=created_by.label)
    raw_key = ApiKey.objects.assign_key(api_key)
    api_key.save(force_insert=True)  # the library's create_key tries an UPDATE first
    if audit:
        audit_record(
            actor=created_by.label,
            action=AuditAction.KEY_CREATED,
            subject=_key_subject(api_key, agent),
            agent=agent,
            object_id=api_key.pk,
            detail={"kind": kind, "prefix": api_key.prefix},
        )
    return api_key, raw_key


def _key_subject(api_key: ApiKey, agent: Agent | None) -> str:
    owner = f"agent {agent.name}" if agent is not None else "staff"
    return f"key {api_key.name} ({api_key.prefix}…) of {owner}"


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: Actor) -> ApiKey:
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if api_key.revoked:
        return api_key
    api_key.revoked = True
    api_key.revoked_at = timezone.now()
    api_key.save(update_fields=["revoked", "revoked_at"])
    agent = api_key.agent if api_key.agent_id else None
    audit_record(
        actor=actor.label,
        action=AuditAction.KEY_REVOKED,
        subject=_key_subject(api_key, agent),
        agent=agent,
        object_id=api_key.pk,
        detail={"prefix": api_key.prefix},
    )
    return api_key


def agent_provision(
    *,
    name: str,
    principal_email: str,
    policy: Policy,
    actor: Actor,
    principal_slack_user_id: str = "",
    vendors: Sequence[Vendor] | None = None,
) -> ProvisionedAgent:
    """Create an agent, its API key and one card per vendor, all or nothing.

    `vendors` replaces the policy's default vendors when given.
    """
    with issuer_compensation() as issued, transaction.atomic():
        principal = principal_get_or_create(
            email=principal_email, slack_user_id=principal_slack_user_id
        )
        if not principal.email_verified:  # a link to verify, mailed once this commits
            verification_send(principal)
        agent = Agent(name=name.strip(), principal=principal, policy=policy)
        # Field checks only: the foreign keys were just resolved and the database
        # constraints hold the rest, so full_clean's dozen queries buy nothing here.
        agent.clean_fields(exclude=["principal", "policy"])
        if Agent.objects.filter(principal=principal, name=agent.name).exists():
            raise ValidationError({"name": "This principal already has an agent of that name."})
        agent.save(force_insert=True)
        api_key, raw_key = api_key_create(
            name=f"{agent.name[:45]} key", agent=agent, created_by=actor, audit=False
        )
        card_vendors = list(policy.default_vendors.all()) if vendors is None else list(vendors)
        cards = cards_issue_for_new_agent(
            agent=agent, vendors=card_vendors, actor=actor, issued=issued
        )
        if policy.x402_allowed:  # its USDC wallet, ready to pay x402 APIs
            wallet_create(agent=agent)
        audit_record(
            actor=actor.label,
            action=AuditAction.AGENT_PROVISIONED,
            subject=f"agent {agent.name}",
            agent=agent,
            object_id=agent.pk,
            detail={
                "principal": principal.email,
                "policy": policy.slug,
                "key_prefix": api_key.prefix,
                "cards": [card_subject(new_card.card) for new_card in cards],
            },
        )
        return ProvisionedAgent(agent=agent, api_key=api_key, raw_key=raw_key, cards=cards)


def agent_trace_set(*, agent: Agent, trace_id: str, ttl_seconds: int | None = None) -> Agent:
    """Set the agent's active trace context; charges without their own trace get it."""
    validate_trace_id(trace_id)
    ttl = settings.AGENTWALLET_TRACE_TTL_SECONDS if ttl_seconds is None else ttl_seconds
    if not 1 <= ttl <= MAX_TRACE_TTL_SECONDS:
        raise ValidationError({"ttl_seconds": f"Must be between 1 and {MAX_TRACE_TTL_SECONDS}."})
    agent.trace_id = trace_id
    agent.trace_expires_at = timezone.now() + timedelta(seconds=ttl)
    agent.save(update_fields=["trace_id", "trace_expires_at", "updated_at"])
    return agent


def agent_trace_clear(*, agent: Agent) -> Agent:
    agent.trace_id = ""
    agent.trace_expires_at = None
    agent.save(update_fields=["trace_id", "trace_expires_at", "updated_at"])
    return agent


def agent_bumps_valid_until_extend(*, agent: Agent, valid_until: datetime) -> Agent:
    """Note that a granted cap bump lasts until `valid_until`: decisions look bumps up
    only while one may be valid. Call with the agent's row locked (approval_grant)."""
    if agent.bumps_valid_until is None or agent.bumps_valid_until < valid_until:
        agent.bumps_valid_until = valid_until
        agent.save(update_fields=["bumps_valid_until", "updated_at"])
    return agent
