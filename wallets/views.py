"""The portal's agent pages: the list and one agent, with its cards (each with its last
use), the kill switch, issuing a card, and keys. Each view parses, calls one selector or
service, and renders."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import from_cents
from agentwallet.portal.htmx import render_page
from agentwallet.portal.selectors import PortalScope, portal_scope_required
from cards.issuers import IssuerError
from cards.models import Card
from cards.selectors import cards_last_used
from cards.serializers import CardCreateInputSerializer
from cards.services import (
    DEFAULT_EPHEMERAL_LIFETIME,
    agent_cards_freeze,
    agent_cards_unfreeze,
    card_create_for_agent,
    card_freeze,
    card_unfreeze,
)
from ledger.selectors import agent_budget, agents_day_spend
from policies.models import Policy, Vendor
from wallets.actors import Actor
from wallets.models import Agent, AgentStatus, ApiKey, Principal
from wallets.selectors import wallet_of, x402_payments_latest
from wallets.services import agent_provision, api_key_create, api_key_revoke
from wallets.verification import (
    ExpiredLink,
    InvalidLink,
    principal_verify,
    verification_resend_for_expired,
    verification_send,
)

PAGE_SIZE = 25


def _agent_in_scope(scope: PortalScope, agent_id: str) -> Agent:
    """404 alike for a missing agent and another team's."""
    try:
        return scope.agents().select_related("policy", "principal").get(pk=uuid.UUID(agent_id))
    except (ValueError, Agent.DoesNotExist) as exc:
        raise Http404("No such agent.") from exc


def _require(request, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"This needs the {permission} permission.")


@login_required
def agent_list(request) -> HttpResponse:
    scope = portal_scope_required(user=request.user)
    agents = scope.agents().select_related("policy", "principal").order_by("name")
    query = request.GET.get("q", "").strip()[:100]
    status = request.GET.get("status", "")
    policy = request.GET.get("policy", "")
    team = request.GET.get("team", "")
    if query:
        agents = agents.filter(name__icontains=query)
    if status in AgentStatus.values:
        agents = agents.filter(status=status)
    if policy:
        agents = agents.filter(policy__slug=policy)
    if team.isascii() and team.isdigit() and len(team) <= 18:
        agents = agents.filter(principal_id=int(team))
    page = Paginator(agents, PAGE_SIZE).get_page(request.GET.get("page"))
    spent = agents_day_spend(agent_ids=[agent.pk for agent in page], now=timezone.now())
    rows = []
    for agent in page:
        cap = agent.policy.daily_cap.amount
        day = from_cents(spent.get(agent.pk, 0))
        rows.append({"agent": agent, "day": day, "share": min(int(day * 100 / cap), 100)})
    context = {
        "page": page,
        "rows": rows,
        "query": query,
        "status": status,
        "policy": policy,
        "team": team,
        "statuses": AgentStatus.choices,
        "policies": Policy.objects.order_by("name").values_list("slug", "name"),
        # The teams (principals) whose agents the user sees.
        "teams": Principal.objects.filter(agents__in=scope.agents())
        .distinct()
        .order_by("email")
        .values_list("pk", "email"),
    }
    return render_page(request, "wallets/_agent_rows.html", "wallets/agent_list.html", context)


@never_cache  # the answer holds a key and card numbers
@login_required
def agent_new(request) -> HttpResponse:
    """Provision an agent from a policy, with the same service as the API. Its key and
    card numbers are in this one response and nowhere else."""
    scope = portal_scope_required(user=request.user)
    _require(request, "wallets.add_agent")
    policies = Policy.objects.order_by("name")
    # A lead provisions for the teams they lead only (else the agent would be out of
    # their sight at once); organisation-wide users for anyone, a new owner included.
    teams = None
    if not scope.everything:
        teams = list(
            Principal.objects.filter(pk__in=scope.principal_ids)
            .order_by("email")
            .values_list("email", flat=True)
        )
    form = {"name": "", "principal_email": "", "policy": "starter"}
    errors: dict[str, list[str]] = {}
    status = 400
    if request.method == "POST":
        form = {key: request.POST.get(key, "").strip() for key in form}
        policy = policies.filter(slug=form["policy"]).first()
        if policy is None:
            errors["policy"] = ["Choose a policy."]
        if not form["name"] or len(form["name"]) > 100:
            errors["name"] = ["A name of 1-100 characters."]
        if teams is not None and form["principal_email"] not in teams:
            errors["principal_email"] = ["Choose the owner of a team you lead."]
        if not errors:
            try:
                provisioned = agent_provision(
                    name=form["name"],
                    principal_email=form["principal_email"],
                    policy=policy,
                    actor=Actor.for_user(request.user),
                )
            except ValidationError as exc:
                errors = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
            except Conflict as exc:
                errors = {"name": [str(exc)]}
            except IssuerError as exc:  # nothing was kept: the issued cards were closed
                errors, status = {"": [str(exc)]}, 502
            else:
                return render(request, "wallets/agent_provisioned.html", {"new": provisioned})
    return render(
        request,
        "wallets/agent_new.html",
        {"form": form, "errors": errors, "policies": policies, "teams": teams},
        status=status if errors else 200,
    )


@login_required
def agent_detail(request, agent_id: str) -> HttpResponse:
    scope = portal_scope_required(user=request.user)
    return _agent_page(request, _agent_in_scope(scope, agent_id))


def _agent_page(request, agent: Agent, *, status: int = 200, **extra) -> HttpResponse:
    """The agent's page as the answer to a write that has something to show once (a new
    key, a new card's number): rendered, never stored, so the secret exists in this
    response only."""
    budget = agent_budget(agent=agent)
    last_used = cards_last_used(cards=[row.card for row in budget.cards])
    may_issue = request.user.has_perm("cards.add_card")
    context = {
        "agent": agent,
        "budget": budget,
        "card_rows": [
            {"budget": row, "last_used": last_used.get(row.card.pk)} for row in budget.cards
        ],
        "keys": ApiKey.objects.filter(agent=agent).order_by("-created"),
        "may_freeze": request.user.has_perm("cards.change_card"),
        "may_manage_keys": request.user.has_perm("wallets.add_apikey"),
        "may_resend_verification": request.user.has_perm("wallets.add_agent"),
        "may_issue": may_issue,
        "vendors": list(Vendor.objects.order_by("name")) if may_issue else [],
        "issue": {"lifetime_unit": "hours", **extra.pop("issue", {})},
        "issue_errors": {},
        "lifetime_units": LIFETIME_UNITS,
        "wallet": wallet_of(agent=agent),
        "x402_payments": x402_payments_latest(agent=agent),
        **extra,
    }
    return render(request, "wallets/agent_detail.html", context, status=status)


# The lifetimes the issue form offers, in seconds per unit.
LIFETIME_UNITS = {"minutes": 60, "hours": 3600}
ISSUE_FIELDS = ("vendor", "monthly_cap", "trace_id", "lifetime", "lifetime_unit")


@never_cache  # the answer holds the new card's number and CVC
@login_required
@require_POST
def agent_card_issue(request, agent_id: str) -> HttpResponse:
    """Issue a card to the agent as POST /api/agents/{id}/cards does: the same input
    validation (CardCreateInputSerializer) and service. The number and CVC are in this
    one response and nowhere else; on bad input nothing is issued and the form says
    why at its fields (status 400)."""
    scope = portal_scope_required(user=request.user)
    agent = _agent_in_scope(scope, agent_id)
    _require(request, "cards.add_card")
    form = {key: request.POST.get(key, "").strip() for key in ISSUE_FIELDS}
    form["ephemeral"] = bool(request.POST.get("ephemeral"))
    form["single_use"] = bool(request.POST.get("single_use"))
    data, errors = _card_input(form, currency=agent.policy.currency)
    if not errors:
        try:
            new_card = card_create_for_agent(
                agent=agent, actor=Actor.for_user(request.user), **data
            )
        except Conflict as exc:
            errors = {"vendor": [str(exc)]}
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
        except IssuerError as exc:
            return _agent_page(
                request, agent, status=502, issue=form, issue_errors={"": [str(exc)]}
            )
        else:
            return _agent_page(request, agent, new_card=new_card)
    return _agent_page(request, agent, status=400, issue=form, issue_errors=errors)


def _card_input(form: dict, *, currency: str) -> tuple[dict, dict[str, list[str]]]:
    """The form as the API's request body, validated by the API's serializer; errors are
    keyed by the form's fields."""
    body: dict = {"vendor": form["vendor"], "single_use": form["single_use"]}
    errors: dict[str, list[str]] = {}
    if form["monthly_cap"]:
        body["monthly_cap"] = {"amount": form["monthly_cap"], "currency": currency}
    if form["trace_id"]:
        body["trace_id"] = form["trace_id"]
    if form["lifetime"]:
        unit = LIFETIME_UNITS.get(form["lifetime_unit"] or "hours")
        digits = form["lifetime"]
        if unit is None or not (digits.isascii() and digits.isdigit() and len(digits) <= 6):
            errors["lifetime"] = ["A whole number of minutes or hours."]
        else:
            body["expires_in_seconds"] = int(digits) * unit
    elif form["ephemeral"] and not form["trace_id"]:
        # Ephemeral with no lifetime and no trace: the lifetime ephemeral cards get.
        body["expires_in_seconds"] = int(DEFAULT_EPHEMERAL_LIFETIME.total_seconds())
    serializer = CardCreateInputSerializer(data=body, context={"currency": currency})
    if not serializer.is_valid():
        for field, messages_ in serializer.errors.items():
            if field == "vendor":
                errors["vendor"] = ["Choose a vendor from the list."]
            elif field == "expires_in_seconds":
                errors["lifetime"] = ["A lifetime from 1 minute to 90 days."]
            elif field == "trace_id":
                errors["trace_id"] = [
                    "Up to 128 letters, digits and . _ : / # @ + -, starting with a letter "
                    "or digit."
                ]
            else:
                errors["" if field == "non_field_errors" else field] = [
                    str(message) for message in messages_
                ]
    return (serializer.validated_data if not errors else {}), errors


@never_cache
@login_required
@require_POST
def agent_action(request, agent_id: str, action: str) -> HttpResponse:
    """Freeze or unfreeze one card or the whole agent; create or revoke a key; mail the
    principal a new verification link."""
    scope = portal_scope_required(user=request.user)
    agent = _agent_in_scope(scope, agent_id)
    actor = Actor.for_user(request.user)
    reason = request.POST.get("reason", "").strip()[:500]
    try:
        if action in ("freeze-card", "unfreeze-card", "freeze-agent", "unfreeze-agent"):
            _require(request, "cards.change_card")
            _freeze_action(agent, action, request.POST.get("card", ""), actor, reason)
            messages.success(request, _DONE[action])
        elif action == "create-key":
            _require(request, "wallets.add_apikey")
            _, raw_key = api_key_create(
                name=request.POST.get("name", ""), agent=agent, created_by=actor
            )
            return _agent_page(request, agent, new_key=raw_key)
        elif action == "resend-verification":
            _require(request, "wallets.add_agent")
            principal = agent.principal
            if principal.email_verified:
                messages.info(request, f"{principal.email} is verified already.")
            elif verification_send(principal, actor=actor.label):
                messages.success(request, f"A new link is on its way to {principal.email}.")
            else:
                messages.info(request, "A link went out less than a minute ago: nothing sent.")
        elif action == "revoke-key":
            _require(request, "wallets.change_apikey")
            key = ApiKey.objects.filter(agent=agent, pk=request.POST.get("key", "")).first()
            if key is None:
                raise Http404("No such key.")
            api_key_revoke(api_key=key, actor=actor)
            messages.success(request, f"Revoked the key {key.name}.")
        else:
            raise Http404("No such action.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages) + " Nothing changed.")
    except Conflict as exc:
        messages.error(request, f"{exc} Nothing changed.")
    return redirect("portal-agent", agent_id=agent.pk)


_DONE = {
    "freeze-card": "Frozen: the card's next authorization is declined.",
    "unfreeze-card": "Unfrozen.",
    "freeze-agent": "Every card of the agent is frozen.",
    "unfreeze-agent": "Every frozen card of the agent is unfrozen.",
}


def _freeze_action(agent: Agent, action: str, card_id: str, actor: Actor, reason: str) -> None:
    if action == "freeze-agent":
        agent_cards_freeze(agent=agent, actor=actor, reason=reason)
        return
    if action == "unfreeze-agent":
        agent_cards_unfreeze(agent=agent, actor=actor, reason=reason)
        return
    try:
        card = Card.objects.get(pk=uuid.UUID(card_id), agent=agent)
    except (ValueError, Card.DoesNotExist) as exc:
        raise Http404("No such card.") from exc
    if action == "freeze-card":
        card_freeze(card=card, actor=actor, reason=reason)
    else:
        card_unfreeze(card=card, actor=actor, reason=reason)


def principal_verify_page(request, token: str) -> HttpResponse:
    """GET shows a button, POST verifies: a mail scanner that follows links verifies
    nothing. An expired link offers to mail a new one to the same address."""
    context: dict = {}
    status = 200
    if request.method == "POST" and request.POST.get("action") == "resend":
        try:
            principal, sent = verification_resend_for_expired(token=token)
        except InvalidLink as error:
            context["error"], status = str(error), 400
        else:
            context["resent_to"], context["resent"] = principal.email, sent
    elif request.method == "POST":
        try:
            context["principal"] = principal_verify(token=token)
        except ExpiredLink as error:
            context["error"], context["expired"], status = str(error), True, 400
        except InvalidLink as error:
            context["error"], status = str(error), 400
    return render(request, "wallets/principal_verify.html", context, status=status)
