"""The portal's card page: one card with its caps, locks, authorizations, postings and
history, and what may be done to it (freeze, unfreeze, reset the merchant lock, change
its monthly cap). Each view parses, calls one selector or service, and renders."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import MoneyError, parse_amount
from agentwallet.portal.htmx import keyset_id, vary_on_htmx, wants_fragment
from agentwallet.portal.selectors import portal_scope_required
from cards.models import Card
from cards.selectors import (
    card_authorizations_page,
    card_events,
    card_get_in_scope,
    card_merchant_locks,
    card_postings,
)
from cards.services import card_cap_update, card_freeze, card_merchant_lock_reset, card_unfreeze
from ledger.models import Decision
from ledger.selectors import agent_budget
from wallets.actors import Actor


def _require(request, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"This needs the {permission} permission.")


@login_required
def card_detail(request, card_id: str) -> HttpResponse:
    """The card page; an HTMX request (the authorizations' filter and pager) gets the
    authorizations only."""
    scope = portal_scope_required(user=request.user)
    card = card_get_in_scope(agents=scope.agents(), card_id=card_id)
    if wants_fragment(request):
        response = render(request, "cards/_authorizations.html", _authorizations(request, card))
    else:
        response = _card_page(request, card)
    return vary_on_htmx(response)


def _authorizations(request, card: Card) -> dict[str, Any]:
    before = keyset_id(request.GET.get("before", ""))
    return {
        "card": card,
        "auths": card_authorizations_page(
            card=card, decision=request.GET.get("decision", ""), before=before
        ),
        "paged": before is not None,
        "decisions": Decision.choices,
    }


def _card_page(request, card: Card, *, status: int = 200, **extra: Any) -> HttpResponse:
    budget = agent_budget(agent=card.agent)
    caps = next((row for row in budget.cards if row.card.pk == card.pk), None)
    currency = budget.policy.currency
    context = {
        **_authorizations(request, card),
        "agent": card.agent,
        "caps": caps,  # None for a closed card: no cap applies to it any more
        "currency": currency,
        "month_start": budget.month_start,
        "month_time_zone": budget.month_time_zone,
        "locks": card_merchant_locks(card=card),
        "postings": card_postings(card=card),
        "events": card_events(card=card),
        "may_change": request.user.has_perm("cards.change_card"),
        "cap_value": card.monthly_cap.amount if card.monthly_cap else "",
        "cap_errors": [],
        **extra,
    }
    return render(request, "cards/card_detail.html", context, status=status)


@login_required
@require_POST
def card_action(request, card_id: str, action: str) -> HttpResponse:
    """Freeze, unfreeze, reset the merchant lock or save the monthly cap. Another team's
    card answers 404 before any permission is looked at, so ids cannot be probed."""
    scope = portal_scope_required(user=request.user)
    card = card_get_in_scope(agents=scope.agents(), card_id=card_id)
    _require(request, "cards.change_card")
    actor = Actor.for_user(request.user)
    reason = request.POST.get("reason", "").strip()[:500]
    if action == "cap":
        return _cap_save(request, card, actor, reason)
    try:
        if action == "freeze":
            card_freeze(card=card, actor=actor, reason=reason)
            done = "Frozen: the card's next authorization is declined."
        elif action == "unfreeze":
            card_unfreeze(card=card, actor=actor, reason=reason)
            done = "Unfrozen."
        elif action == "reset-lock":
            card_merchant_lock_reset(card=card, actor=actor, reason=reason)
            done = "Merchant lock reset: the card's next approved charge locks it again."
        else:
            raise Http404("No such action.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages) + " Nothing changed.")
    except Conflict as exc:
        messages.error(request, f"{exc} Nothing changed.")
    else:
        messages.success(request, done)
    return redirect("portal-card", card_id=card.pk)


def _cap_save(request, card: Card, actor: Actor, reason: str) -> HttpResponse:
    """The monthly cap is parsed as the API parses money (parse_amount: a positive
    decimal string in whole cents of the policy's currency); an error is shown at the
    field, with the page as it was (status 400) and nothing changed."""
    raw = request.POST.get("monthly_cap", "").strip()
    currency = card.agent.policy.currency
    try:
        saved = card_cap_update(
            card=card, monthly_cap=parse_amount(raw, currency), actor=actor, reason=reason
        )
    except MoneyError as exc:
        errors = [str(exc)]
    except ValidationError as exc:
        errors = exc.messages
    except Conflict as exc:
        errors = [str(exc)]
    else:
        cap = saved.monthly_cap
        messages.success(request, f"Saved: the card's monthly cap is {cap.amount} {cap.currency}.")
        return redirect("portal-card", card_id=card.pk)
    # The card as it was (the service changed nothing), the input kept to correct it.
    return _card_page(
        request, card, status=400, cap_errors=errors, cap_value=raw, cap_reason=reason
    )
