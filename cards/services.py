"""Writes for cards: issuance, freeze, unfreeze, close, the monthly cap. Each records a
CardEvent, and what a person did also an audit row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from djmoney.money import Money

from agentwallet.audit import audit_record, card_subject
from agentwallet.lib.errors import Conflict
from agentwallet.lib.money import CENT, MAX_AMOUNT, to_cents
from agentwallet.models import AuditAction
from cards.crypto import encrypt_number, number_fingerprint
from cards.issuers import CardControls, Cardholder, IssuedCard, get_issuer
from cards.models import Card, CardEvent, CardEventKind, CardStatus, IssuerCardholder
from policies.models import Vendor
from policies.rules import SCOPE_CARD, cap_key
from wallets.actors import Actor
from wallets.models import Agent, Principal
from wallets.x402.keys import wallet_status_set

DEFAULT_EPHEMERAL_LIFETIME = timedelta(days=7)


@dataclass(frozen=True, repr=False)
class NewCard:
    """A card just issued, with the secrets shown this once."""

    card: Card
    secrets: IssuedCard


@contextmanager
def issuer_compensation() -> Iterator[list[IssuedCard]]:
    """Close cards at the issuer if the transaction that issued them fails.

    The issuer is outside our database, so all-or-nothing needs a compensating call.
    """
    issued: list[IssuedCard] = []
    try:
        yield issued
    except BaseException:
        issuer = get_issuer()
        for secret in issued:
            issuer.close_card(issuer_card_id=secret.issuer_card_id)
        raise


def _cardholder_id(issuer_name: str, principal: Principal) -> str:
    """The issuer's cardholder for the principal, created with its first card (under the
    principal's row lock, so two first cards of one team make one cardholder)."""
    found = IssuerCardholder.objects.filter(issuer=issuer_name, principal=principal).first()
    if found is not None:
        return found.cardholder_id
    Principal.objects.select_for_update().filter(pk=principal.pk).first()
    found = IssuerCardholder.objects.filter(issuer=issuer_name, principal=principal).first()
    if found is not None:
        return found.cardholder_id
    cardholder_id = get_issuer(issuer_name).cardholder_create(
        cardholder=Cardholder(ref=str(principal.pk), name=principal.name, email=principal.email)
    )
    IssuerCardholder.objects.create(
        issuer=issuer_name, principal=principal, cardholder_id=cardholder_id
    )
    return cardholder_id


def card_controls(card: Card, *, bump_cents: int = 0) -> CardControls:
    """What the issuer enforces on the card: its merchant categories and its own monthly
    cap (plus `bump_cents`, a lead's bump of it in force), in the policy's currency."""
    cap = card.monthly_cap
    return CardControls(
        currency=card.agent.policy.currency,
        allowed_mccs=tuple(card.allowed_mccs),
        monthly_cap_cents=None if cap is None else to_cents(cap.amount) + bump_cents,
    )


def _issue_at_issuer(
    *,
    agent: Agent,
    vendor: Vendor,
    issued: list[IssuedCard],
    now: datetime,
    cardholder_id: str,
    monthly_cap: Decimal | None = None,
    trace_id: str = "",
    expires_in_seconds: int | None = None,
    single_use: bool = False,
) -> NewCard:
    """Create the card at the issuer and build (not save) our row for it."""
    is_ephemeral = bool(trace_id) or expires_in_seconds is not None
    if expires_in_seconds is not None:
        expires_at: datetime | None = now + timedelta(seconds=expires_in_seconds)
    else:
        expires_at = now + DEFAULT_EPHEMERAL_LIFETIME if is_ephemeral else None
    issuer = get_issuer()
    card = Card(
        id=uuid.uuid4(),
        agent=agent,
        vendor=vendor,
        issuer=issuer.name,
        allowed_mccs=list(vendor.mccs),
        monthly_cap=None if monthly_cap is None else Money(monthly_cap, agent.policy.currency),
        is_ephemeral=is_ephemeral,
        single_use=single_use,
        trace_id=trace_id,
        expires_at=expires_at,
    )
    secrets = issuer.issue_card(
        cardholder_id=cardholder_id,
        controls=card_controls(card),
        card_ref=str(card.pk),
    )
    issued.append(secrets)
    card.issuer_card_id = secrets.issuer_card_id
    card.last4 = secrets.last4
    card.exp_month = secrets.exp_month
    card.exp_year = secrets.exp_year
    card.number_ciphertext = encrypt_number(secrets.number)
    card.number_fingerprint = number_fingerprint(secrets.number)
    return NewCard(card=card, secrets=secrets)


def _issued_event(new_card: NewCard, actor: Actor) -> CardEvent:
    trace_id = new_card.card.trace_id
    return CardEvent(
        card=new_card.card,
        kind=CardEventKind.ISSUED,
        actor=actor.label,
        reason=f"trace {trace_id}" if trace_id else "",
    )


def cards_issue_for_new_agent(
    *, agent: Agent, vendors: Sequence[Vendor], actor: Actor, issued: list[IssuedCard]
) -> list[NewCard]:
    """One standing card per vendor for an agent that has none yet, in two INSERTs.

    Call inside a transaction and an `issuer_compensation()` block (provisioning).
    """
    now = timezone.now()
    cardholder_id = _cardholder_id(get_issuer().name, agent.principal) if vendors else ""
    new_cards = [
        _issue_at_issuer(
            agent=agent, vendor=vendor, issued=issued, now=now, cardholder_id=cardholder_id
        )
        for vendor in sorted(
            {vendor.pk: vendor for vendor in vendors}.values(), key=lambda vendor: vendor.slug
        )
    ]
    Card.objects.bulk_create([new_card.card for new_card in new_cards])
    CardEvent.objects.bulk_create([_issued_event(new_card, actor) for new_card in new_cards])
    return new_cards


def card_create_for_agent(
    *,
    agent: Agent,
    vendor: Vendor,
    actor: Actor,
    monthly_cap: Decimal | None = None,
    trace_id: str = "",
    expires_in_seconds: int | None = None,
    single_use: bool = False,
) -> NewCard:
    """An extra or ephemeral card, issued on its own (POST /api/agents/{id}/cards)."""
    is_ephemeral = bool(trace_id) or expires_in_seconds is not None
    if (
        not is_ephemeral
        and Card.objects.filter(agent=agent, vendor=vendor, is_ephemeral=False)
        .exclude(status=CardStatus.CLOSED)
        .exists()
    ):
        raise Conflict(
            f"Agent already has an open {vendor.name} card; close it first or "
            "ask for an ephemeral card (trace_id or expires_in_seconds)."
        )
    with issuer_compensation() as issued, transaction.atomic():
        new_card = _issue_at_issuer(
            agent=agent,
            vendor=vendor,
            issued=issued,
            now=timezone.now(),
            cardholder_id=_cardholder_id(get_issuer().name, agent.principal),
            monthly_cap=monthly_cap,
            trace_id=trace_id,
            expires_in_seconds=expires_in_seconds,
            single_use=single_use,
        )
        try:
            with transaction.atomic():
                new_card.card.save(force_insert=True)
        except IntegrityError as exc:
            # A concurrent request took the slot between our check and the insert.
            raise Conflict("The card conflicts with an existing open card.") from exc
        _issued_event(new_card, actor).save(force_insert=True)
        card = new_card.card
        audit_record(
            actor=actor.label,
            action=AuditAction.CARD_ISSUED,
            subject=card_subject(card),
            agent=agent,
            object_id=card.pk,
            detail={
                "vendor": vendor.slug,
                "monthly_cap": str(card.monthly_cap.amount) if card.monthly_cap else None,
                "currency": str(card.monthly_cap.currency) if card.monthly_cap else None,
                "ephemeral": card.is_ephemeral,
                "single_use": card.single_use,
                "trace_id": card.trace_id,
                "expires_at": card.expires_at.isoformat() if card.expires_at else None,
            },
        )
        return new_card


def _require_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why (it is recorded with the freeze)."})
    return reason


_AUDIT_ACTIONS = {
    CardEventKind.FROZEN: AuditAction.CARD_FROZEN,
    CardEventKind.UNFROZEN: AuditAction.CARD_UNFROZEN,
    CardEventKind.CLOSED: AuditAction.CARD_CLOSED,
}


def _set_status(
    card: Card, status: str, kind: str, actor: Actor, reason: str, *, audit: bool = True
) -> Card:
    """`audit=False` when the caller records one row for many cards (the kill switch).
    Our row is what the next authorization reads; the issuer hears once this commits."""
    card.status = status
    card.save(update_fields=["status", "updated_at"])
    CardEvent.objects.create(card=card, kind=kind, actor=actor.label, reason=reason)
    if audit:
        audit_record(
            actor=actor.label,
            action=_AUDIT_ACTIONS[kind],
            subject=card_subject(card),
            agent_id=card.agent_id,
            object_id=card.pk,
            reason=reason,
        )
    _tell_issuer(card.pk, ISSUER_STATUS)
    return card


ISSUER_STATUS = "status"
ISSUER_CONTROLS = "controls"


def _tell_issuer(card_id: uuid.UUID | str, what: str) -> None:
    """Once the caller's transaction commits, bring the card's status or controls at the
    issuer in line with our row (a task that retries an issuer that is away)."""
    from cards.tasks import issuer_card_sync_task

    card_id = str(card_id)
    transaction.on_commit(lambda: issuer_card_sync_task.delay(card_id, what), robust=True)


def card_controls_push(*, card_id: uuid.UUID | str) -> None:
    """Send the card's controls to its issuer once the caller commits (a bump of the
    card's cap was granted: the issuer's limit must let the charge through too)."""
    _tell_issuer(card_id, ISSUER_CONTROLS)


def issuer_card_sync(*, card_id: uuid.UUID | str, what: str) -> str:
    """Push our card's status (or controls) to its issuer, as our row says now: a late or
    repeated run pushes the newest state, never an old one. Returns what it pushed."""
    card = Card.objects.select_related("agent__policy").get(pk=card_id)
    issuer = get_issuer(card.issuer)
    if what == ISSUER_CONTROLS:
        from approvals.selectors import bumps_by_scope

        bumps = bumps_by_scope(agent_id=card.agent_id, now=timezone.now())
        controls = card_controls(
            card, bump_cents=bumps.get(cap_key(SCOPE_CARD, card_id=card.pk), 0)
        )
        issuer.update_controls(issuer_card_id=card.issuer_card_id, controls=controls)
        return f"controls {controls}"
    push = {
        CardStatus.ACTIVE: issuer.unfreeze_card,
        CardStatus.FROZEN: issuer.freeze_card,
        CardStatus.CLOSED: issuer.close_card,
    }[CardStatus(card.status)]
    push(issuer_card_id=card.issuer_card_id)
    return card.status


@transaction.atomic
def card_freeze(*, card: Card, actor: Actor, reason: str) -> Card:
    """Freeze at once: the very next authorization sees the new status."""
    reason = _require_reason(reason)
    card = Card.objects.select_for_update(of=("self",)).select_related("vendor").get(pk=card.pk)
    if card.status == CardStatus.CLOSED:
        raise Conflict("A closed card cannot be frozen.")
    if card.status == CardStatus.FROZEN:
        return card  # already frozen: nothing changes, nothing recorded twice
    return _set_status(card, CardStatus.FROZEN, CardEventKind.FROZEN, actor, reason)


@transaction.atomic
def card_unfreeze(*, card: Card, actor: Actor, reason: str = "") -> Card:
    card = Card.objects.select_for_update(of=("self",)).select_related("vendor").get(pk=card.pk)
    if card.status == CardStatus.CLOSED:
        raise Conflict("A closed card cannot be unfrozen.")
    if card.status == CardStatus.ACTIVE:
        return card
    return _set_status(card, CardStatus.ACTIVE, CardEventKind.UNFROZEN, actor, reason.strip())


@transaction.atomic
def card_close(*, card: Card, actor: Actor, reason: str = "") -> Card:
    card = Card.objects.select_for_update(of=("self",)).select_related("vendor").get(pk=card.pk)
    if card.status == CardStatus.CLOSED:
        return card
    return _set_status(card, CardStatus.CLOSED, CardEventKind.CLOSED, actor, reason.strip())


@transaction.atomic
def agent_cards_freeze(*, agent: Agent, actor: Actor, reason: str) -> list[Card]:
    """Freeze every active card of the agent (the kill switch). Returns those frozen."""
    reason = _require_reason(reason)
    return _agent_cards_set(
        agent, actor, reason, CardStatus.ACTIVE, CardStatus.FROZEN, AuditAction.AGENT_FROZEN
    )


@transaction.atomic
def agent_cards_unfreeze(*, agent: Agent, actor: Actor, reason: str = "") -> list[Card]:
    return _agent_cards_set(
        agent,
        actor,
        reason.strip(),
        CardStatus.FROZEN,
        CardStatus.ACTIVE,
        AuditAction.AGENT_UNFROZEN,
    )


def _agent_cards_set(
    agent: Agent, actor: Actor, reason: str, was: str, status: str, action: AuditAction
) -> list[Card]:
    """Move every card of the agent in status `was` to `status`, under their row locks,
    with an event per card and one audit row for the agent."""
    kind = CardEventKind.FROZEN if status == CardStatus.FROZEN else CardEventKind.UNFROZEN
    cards = list(
        Card.objects.select_for_update(of=("self",))
        .select_related("vendor")
        .filter(agent=agent, status=was)
        .order_by("pk")
    )
    changed = [_set_status(card, status, kind, actor, reason, audit=False) for card in cards]
    wallet_status_set(agent=agent, frozen=status == CardStatus.FROZEN)
    audit_record(
        actor=actor.label,
        action=action,
        subject=f"agent {agent.name}",
        agent_id=agent.pk,
        object_id=agent.pk,
        reason=reason,
        detail={"cards": [card_subject(card) for card in changed]},
    )
    return changed


def card_close_after_use(*, card_id: uuid.UUID, used_by: str) -> None:
    """A single-use card's one authorization was approved: the card closes now, in the
    caller's transaction (the decision's), so no second authorization can pass, and at
    the issuer once that transaction has committed, so no network call waits under the
    agent's lock."""
    card = Card.objects.select_related("vendor").get(pk=card_id)
    card.status = CardStatus.CLOSED
    card.save(update_fields=["status", "updated_at"])
    CardEvent.objects.create(
        card=card, kind=CardEventKind.CLOSED, actor="system:single-use", reason=f"used by {used_by}"
    )
    audit_record(
        actor="system:single-use",
        action=AuditAction.CARD_CLOSED,
        subject=card_subject(card),
        agent_id=card.agent_id,
        object_id=card.pk,
        reason=f"used by {used_by}",
    )
    _tell_issuer(card.pk, ISSUER_STATUS)


def card_merchant_learn(*, card_id: uuid.UUID, merchant_id: str) -> bool:
    """Lock the card to the merchant id of its first approved charge (in the caller's
    transaction, the decision's). True when the card is now locked to `merchant_id`;
    False when another merchant was learned first."""
    learned = Card.objects.filter(pk=card_id, learned_merchant_id="").update(
        learned_merchant_id=merchant_id, updated_at=timezone.now()
    )
    return (
        bool(learned) or Card.objects.filter(pk=card_id, learned_merchant_id=merchant_id).exists()
    )


@transaction.atomic
def card_merchant_lock_reset(*, card: Card, actor: Actor, reason: str) -> Card:
    """Forget the merchant the card learned: its next approved charge locks it again
    (say, after the vendor moved to another processor). Recorded like a freeze."""
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why (it is recorded with the reset)."})
    card = Card.objects.select_for_update(of=("self",)).select_related("vendor").get(pk=card.pk)
    if not card.learned_merchant_id:
        return card  # nothing learned: nothing changes, nothing recorded
    audit_record(
        actor=actor.label,
        action=AuditAction.CARD_LOCK_RESET,
        subject=card_subject(card),
        agent_id=card.agent_id,
        object_id=card.pk,
        reason=reason,
        detail={"learned_merchant_id": card.learned_merchant_id},
    )
    CardEvent.objects.create(
        card=card,
        kind=CardEventKind.MERCHANT_LOCK_RESET,
        actor=actor.label,
        reason=f"{reason} (was {card.learned_merchant_id})",
    )
    card.learned_merchant_id = ""
    card.save(update_fields=["learned_merchant_id", "updated_at"])
    return card


@transaction.atomic
def card_cap_update(*, card: Card, monthly_cap: Decimal, actor: Actor, reason: str = "") -> Card:
    """Set the card's own monthly cap, in its policy's currency. Its next authorization
    is decided against it: the decision reads the cap from the card's row (ledger.sql
    CARD_FACTS). The policy's vendor cap still applies beside it; the lower one stops a
    charge. Raises ValidationError (nothing changed) for an amount that is not positive
    or not in whole cents, Conflict for a closed card."""
    if not isinstance(monthly_cap, Decimal) or not monthly_cap.is_finite():
        raise ValidationError({"monthly_cap": "The cap must be an amount such as 250.00."})
    if monthly_cap <= 0:
        raise ValidationError({"monthly_cap": "The cap must be greater than zero."})
    if monthly_cap != monthly_cap.quantize(CENT):
        raise ValidationError({"monthly_cap": "The cap has at most 2 decimal places."})
    if monthly_cap > MAX_AMOUNT:
        raise ValidationError({"monthly_cap": f"The cap must be at most {MAX_AMOUNT}."})
    card = (
        Card.objects.select_for_update(of=("self",))
        .select_related("vendor", "agent__policy")
        .get(pk=card.pk)
    )
    if card.status == CardStatus.CLOSED:
        raise Conflict("A closed card's cap cannot change.")
    currency = card.agent.policy.currency
    new_cap = Money(monthly_cap.quantize(CENT), currency)
    old_cap = card.monthly_cap
    if old_cap is not None and old_cap == new_cap:
        return card  # the same cap: nothing changes, nothing recorded
    was = f"{old_cap.amount} {old_cap.currency}" if old_cap is not None else "none"
    reason = reason.strip()
    card.monthly_cap = new_cap
    card.save(update_fields=["monthly_cap", "updated_at"])
    _tell_issuer(card.pk, ISSUER_CONTROLS)
    CardEvent.objects.create(
        card=card,
        kind=CardEventKind.CAP_CHANGED,
        actor=actor.label,
        reason=f"{was} → {new_cap.amount} {currency}" + (f": {reason}" if reason else ""),
    )
    audit_record(
        actor=actor.label,
        action=AuditAction.CARD_CAP_CHANGED,
        subject=card_subject(card),
        agent_id=card.agent_id,
        object_id=card.pk,
        reason=reason,
        detail={
            "from": str(old_cap.amount) if old_cap is not None else None,
            "to": str(new_cap.amount),
            "currency": currency,
        },
    )
    return card
