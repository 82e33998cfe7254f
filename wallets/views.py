"""The portal's agent pages: the list and one agent, with its kill switch and keys. Each
view parses, calls one selector or service, and renders."""

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
from agentwallet.portal.selectors import PortalScope, portal_scope_required
from cards.models import Card
from cards.services import agent_cards_freeze, agent_cards_unfreeze, card_freeze, card_unfreeze
from ledger.selectors import agent_budget, agents_day_spend
from policies.models import Policy
from wallets.actors import Actor
from wallets.models import Agent, AgentStatus, ApiKey
from wallets.services import agent_provision, api_key_create, api_key_revoke

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
    if query:
        agents = agents.filter(name__icontains=query)
    if status in AgentStatus.values:
        agents = agents.filter(status=status)
    if policy:
        agents = agents.filter(policy__slug=policy)
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
        "statuses": AgentStatus.choices,
        "policies": Policy.objects.order_by("name").values_list("slug", "name"),
    }
    if request.htmx:
        return render(request, "wallets/_agent_rows.html", context)
    return render(request, "wallets/agent_list.html", context)


@never_cache  # the answer holds a key and card numbers
@login_required
def agent_new(request) -> HttpResponse:
    """Provision an agent from a policy, with the same service as the API. Its key and
    card numbers are in this one response and nowhere else."""
    portal_scope_required(user=request.user)
    _require(request, "wallets.add_agent")
    policies = Policy.objects.order_by("name")
    form = {"name": "", "principal_email": "", "policy": "starter"}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        form = {key: request.POST.get(key, "").strip() for key in form}
        policy = policies.filter(slug=form["policy"]).first()
        if policy is None:
            errors["policy"] = ["Choose a policy."]
        if not form["name"] or len(form["name"]) > 100:
            errors["name"] = ["A name of 1-100 characters."]
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
            else:
                return render(request, "wallets/agent_provisioned.html", {"new": provisioned})
    return render(
        request,
        "wallets/agent_new.html",
        {"form": form, "errors": errors, "policies": policies},
        status=400 if errors else 200,
    )


@login_required
def agent_detail(request, agent_id: str) -> HttpResponse:
    scope = portal_scope_required(user=request.user)
    return _agent_page(request, _agent_in_scope(scope, agent_id))


def _agent_page(request, agent: Agent, **extra) -> HttpResponse:
    """The agent's page as the answer to a write that has something to show once (a new
    key): rendered, never stored, so the secret exists in this response only."""
    context = {
        "agent": agent,
        "budget": agent_budget(agent=agent),
        "keys": ApiKey.objects.filter(agent=agent).order_by("-created"),
        "may_freeze": request.user.has_perm("cards.change_card"),
        "may_manage_keys": request.user.has_perm("wallets.add_apikey"),
        **extra,
    }
    return render(request, "wallets/agent_detail.html", context)


@never_cache
@login_required
@require_POST
def agent_action(request, agent_id: str, action: str) -> HttpResponse:
    """Freeze or unfreeze one card or the whole agent; create or revoke a key."""
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
