from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from cards.models import Card, CardEvent
from ledger.models import Authorization, Decision, EntryKind, LedgerEntry
from policies import rules
from wallets.models import Agent


def card_list_for_agent(*, agent: Agent) -> QuerySet[Card]:
    return (
        Card.objects.filter(agent=agent)
        .select_related("vendor")
        .order_by("vendor__name", "created_at")
    )


def card_get_for_agent(*, agent: Agent, card_id: uuid.UUID | str) -> Card:
    """The agent's card; 404 whether it is missing or belongs to someone else."""
    try:
        return Card.objects.select_related("vendor", "agent__policy").get(pk=card_id, agent=agent)
    except Card.DoesNotExist as exc:
        raise Http404("No such card.") from exc


def card_get(*, card_id: uuid.UUID) -> Card:
    """A card by id (for the network's postings, which name cards, not agents)."""
    return Card.objects.select_related("vendor").get(pk=card_id)


# --- The portal's card page -----------------------------------------------------------

CARD_PAGE_SIZE = 50  # authorizations per keyset page
CARD_ENTRIES_SHOWN = 50  # newest postings; the ledger page (?card=) has them all
CARD_EVENTS_SHOWN = 50


def card_get_in_scope(*, agents: QuerySet[Agent], card_id: str) -> Card:
    """A card of one of `agents` (a portal user's scope); 404 alike for a malformed id, a
    missing card and another team's."""
    try:
        return Card.objects.select_related("vendor", "agent__policy", "agent__principal").get(
            pk=uuid.UUID(card_id), agent__in=agents
        )
    except (ValueError, Card.DoesNotExist) as exc:
        raise Http404("No such card.") from exc


def cards_last_used(*, cards: Iterable[Card]) -> dict[uuid.UUID, datetime]:
    """When each card's latest authorization (approved or declined) was decided, in one
    query for all of them. Each card's is the first row of a backward walk of the
    (agent, decided_at) index: authorizations have no card index of their own."""
    ids = [card.pk for card in cards]
    if not ids:
        return {}
    latest = (
        Authorization.objects.filter(agent_id=OuterRef("agent_id"), card_id=OuterRef("pk"))
        .order_by("-decided_at", "-id")
        .values("decided_at")[:1]
    )
    rows = (
        Card.objects.filter(pk__in=ids)
        .annotate(last_used=Subquery(latest))
        .values_list("pk", "last_used")
    )
    return {card_id: used for card_id, used in rows if used is not None}


@dataclass(frozen=True)
class AuthorizationPage:
    rows: list[Authorization]
    decision: str  # "" (all), approved or declined
    next_before: int | None  # the last row's id when older rows exist


def card_authorizations_page(
    *, card: Card, decision: str = "", before: int | None = None
) -> AuthorizationPage:
    """The card's authorizations newest first, declines too (a frozen card's attempts
    among them), CARD_PAGE_SIZE at a time: `before` is the id of the previous page's last
    row, and the page goes on from where that row stands in (decided_at, id) order."""
    rows = Authorization.objects.filter(agent_id=card.agent_id, card=card)
    if decision in Decision.values:
        rows = rows.filter(decision=decision)
    else:
        decision = ""
    if before is not None:
        at = Authorization.objects.filter(pk=before, card=card).values("decided_at")[:1]
        rows = rows.filter(
            Q(decided_at__lt=Subquery(at)) | Q(decided_at=Subquery(at), id__lt=before)
        )
    page = list(rows.order_by("-decided_at", "-id")[: CARD_PAGE_SIZE + 1])
    more = len(page) > CARD_PAGE_SIZE
    page = page[:CARD_PAGE_SIZE]
    return AuthorizationPage(
        rows=page, decision=decision, next_before=page[-1].pk if more and page else None
    )


def card_postings(*, card: Card) -> list[LedgerEntry]:
    """The card's newest captures, releases (reversals, expiries, holds cleared by a
    capture) and refunds: what happened to its holds after the decision."""
    return list(
        LedgerEntry.objects.filter(
            card=card, kind__in=[EntryKind.CAPTURE, EntryKind.RELEASE, EntryKind.REFUND]
        )
        .select_related("authorization")
        .order_by("-created_at", "-id")[:CARD_ENTRIES_SHOWN]
    )


def card_events(*, card: Card) -> list[CardEvent]:
    return list(
        CardEvent.objects.filter(card=card).order_by("-created_at", "-id")[:CARD_EVENTS_SHOWN]
    )


@dataclass(frozen=True)
class MerchantLockView:
    """One of the card's merchant locks as the decision applies it (rules.py)."""

    code: str  # rules.LOCK_* ("mcc" for the first lock)
    label: str
    on: bool
    values: tuple[str, ...]
    note: str


def card_merchant_locks(*, card: Card) -> list[MerchantLockView]:
    """The MCC lock, then the merchant locks in the order the decision checks them
    (policies.rules.merchant_lock_refusing), each with whether it is on for this card."""
    vendor = card.vendor
    ids_lock = vendor.merchant_id_lock
    verified = tuple(vendor.network_ids or ())
    learned = card.learned_merchant_id
    descriptors = tuple(vendor.descriptors or ())
    if not ids_lock:
        learned_note = "Off: the vendor's merchant id lock is switched off."
    elif verified:
        learned_note = "Not used: the vendor has verified merchant ids."
    elif learned:
        learned_note = "Charges from any other merchant id are declined."
    else:
        learned_note = "Nothing learned yet: the card's next approved charge locks it."
    return [
        MerchantLockView(
            code="mcc",
            label="Merchant categories (MCC)",
            on=True,
            values=tuple(card.allowed_mccs),
            note="A charge under any other merchant category code is declined.",
        ),
        MerchantLockView(
            code=rules.LOCK_CARD_MERCHANT_IDS,
            label="The card's own merchant ids",
            on=bool(card.allowed_merchant_ids),
            values=tuple(card.allowed_merchant_ids or ()),
            note="Only these merchant ids." if card.allowed_merchant_ids else "None set.",
        ),
        MerchantLockView(
            code=rules.LOCK_VENDOR_MERCHANT_IDS,
            label="The vendor's verified merchant ids",
            on=ids_lock and bool(verified),
            values=verified,
            note=(
                "Off: the vendor's merchant id lock is switched off."
                if not ids_lock
                else ("Only these merchant ids." if verified else "The vendor has none verified.")
            ),
        ),
        MerchantLockView(
            code=rules.LOCK_LEARNED_MERCHANT_ID,
            label="Learned merchant id",
            on=ids_lock and not verified and bool(learned),
            values=(learned,) if learned else (),
            note=learned_note,
        ),
        MerchantLockView(
            code=rules.LOCK_DESCRIPTOR,
            label="The vendor's statement descriptors",
            on=vendor.descriptor_lock and bool(descriptors),
            values=descriptors,
            note=(
                "Off: the vendor's descriptor lock is switched off."
                if not vendor.descriptor_lock
                else (
                    "The merchant's name must match one of these."
                    if descriptors
                    else "The vendor lists none."
                )
            ),
        ),
    ]
