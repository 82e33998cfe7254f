from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agentwallet.api.exceptions import decline_body
from agentwallet.api.fields import validate_input
from agentwallet.api.schema import error_response
from agentwallet.lib.money import cents_json
from cards import selectors, services
from cards.serializers import (
    CardCreateInputSerializer,
    CardFreezeInputSerializer,
    CardOutputSerializer,
    CardUnfreezeInputSerializer,
    IssuedCardOutputSerializer,
)
from ledger.services.card_requests import CardRequestDeclined, single_use_card_request
from wallets.actors import actor_from_request
from wallets.permissions import require_staff
from wallets.selectors import agent_get_for_actor

CLOSED_CARD = error_response("The card is closed.")

CardListOutputSerializer = inline_serializer(
    "CardListOutput", {"results": CardOutputSerializer(many=True)}
)


class CardListCreateApi(APIView):
    @extend_schema(operation_id="agent_cards_list", responses=CardListOutputSerializer)
    def get(self, request: Request, agent_id: uuid.UUID) -> Response:
        agent = agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        cards = selectors.card_list_for_agent(agent=agent)
        return Response({"results": CardOutputSerializer(cards, many=True).data})

    @extend_schema(
        operation_id="agent_cards_create",
        request=CardCreateInputSerializer,
        responses={
            201: IssuedCardOutputSerializer,
            403: error_response(
                "A single-use card's max_amount does not fit the caps: the cap, its "
                "headroom and the approval request opened (error.cap, error.approval_id)."
            ),
            409: error_response("The agent has an open card for this vendor already."),
        },
    )
    def post(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = actor_from_request(request)
        agent = agent_get_for_actor(actor=actor, agent_id=agent_id)
        data = validate_input(
            CardCreateInputSerializer, request.data, context={"currency": agent.policy.currency}
        )
        ceiling = data.pop("max_amount", None)
        if ceiling is None:
            new_card = services.card_create_for_agent(agent=agent, actor=actor, **data)
        else:
            try:
                new_card = single_use_card_request(
                    agent=agent,
                    vendor=data["vendor"],
                    max_amount=ceiling,
                    expires_in_seconds=data["expires_in_seconds"],
                    trace_id=data.get("trace_id", ""),
                    actor=actor,
                )
            except CardRequestDeclined as declined:
                return Response(card_request_declined_body(declined), status=403)
        body = IssuedCardOutputSerializer(IssuedCardOutputSerializer.shape(new_card)).data
        return Response(body, status=status.HTTP_201_CREATED)


def card_request_declined_body(declined: CardRequestDeclined) -> dict:
    """The error shape with the cap that stopped it, as a declined charge names it."""
    decision, currency = declined.decision, declined.currency

    def money(cents: int | None) -> dict[str, str] | None:
        return None if cents is None else cents_json(cents, currency)

    return decline_body(
        decision.reason,
        "The card's ceiling does not fit the agent's caps now.",
        scope=decision.scope,
        limit=money(decision.limit_cents),
        remaining=money(decision.remaining_cents),
        approval_id=declined.approval_id,
    )


class CardDetailApi(APIView):
    @extend_schema(operation_id="agent_cards_retrieve", responses=CardOutputSerializer)
    def get(self, request: Request, agent_id: uuid.UUID, card_id: uuid.UUID) -> Response:
        agent = agent_get_for_actor(actor=actor_from_request(request), agent_id=agent_id)
        card = selectors.card_get_for_agent(agent=agent, card_id=card_id)
        return Response(CardOutputSerializer(card).data)


class CardFreezeApi(APIView):
    """Freeze one card; the very next authorization on it is declined."""

    @extend_schema(
        operation_id="agent_cards_freeze",
        request=CardFreezeInputSerializer,
        responses={200: CardOutputSerializer, 409: CLOSED_CARD},
    )
    def post(self, request: Request, agent_id: uuid.UUID, card_id: uuid.UUID) -> Response:
        actor = actor_from_request(request)
        agent = agent_get_for_actor(actor=actor, agent_id=agent_id)
        card = selectors.card_get_for_agent(agent=agent, card_id=card_id)
        data = validate_input(CardFreezeInputSerializer, request.data)
        card = services.card_freeze(card=card, actor=actor, reason=data["reason"])
        return Response(CardOutputSerializer(card).data)


class CardUnfreezeApi(APIView):
    """Unfreeze one card. Staff only: an agent cannot lift its own freeze; another
    agent's card still answers 404 first, so ids cannot be probed."""

    @extend_schema(
        operation_id="agent_cards_unfreeze",
        request=CardUnfreezeInputSerializer,
        responses={200: CardOutputSerializer, 409: CLOSED_CARD},
    )
    def post(self, request: Request, agent_id: uuid.UUID, card_id: uuid.UUID) -> Response:
        actor = actor_from_request(request)
        agent = agent_get_for_actor(actor=actor, agent_id=agent_id)
        card = selectors.card_get_for_agent(agent=agent, card_id=card_id)
        require_staff(actor)
        data = validate_input(CardUnfreezeInputSerializer, request.data)
        card = services.card_unfreeze(card=card, actor=actor, reason=data["reason"])
        return Response(CardOutputSerializer(card).data)


class CardMerchantLockResetApi(APIView):
    """Forget the merchant the card locked to on its first charge (staff only; recorded
    with who and why). Its next approved charge locks it again."""

    @extend_schema(
        operation_id="agent_cards_merchant_lock_reset",
        request=CardFreezeInputSerializer,
        responses=CardOutputSerializer,
    )
    def post(self, request: Request, agent_id: uuid.UUID, card_id: uuid.UUID) -> Response:
        actor = actor_from_request(request)
        agent = agent_get_for_actor(actor=actor, agent_id=agent_id)
        card = selectors.card_get_for_agent(agent=agent, card_id=card_id)
        require_staff(actor)
        data = validate_input(CardFreezeInputSerializer, request.data)
        card = services.card_merchant_lock_reset(card=card, actor=actor, reason=data["reason"])
        return Response(CardOutputSerializer(card).data)


AgentFreezeOutputSerializer = inline_serializer(
    "AgentFreezeOutput",
    {"agent_id": serializers.UUIDField(), "changed": CardOutputSerializer(many=True)},
)


class AgentFreezeApi(APIView):
    """Freeze every card of the agent at once (the kill switch)."""

    @extend_schema(
        operation_id="agents_freeze",
        request=CardFreezeInputSerializer,
        responses=AgentFreezeOutputSerializer,
    )
    def post(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = actor_from_request(request)
        agent = agent_get_for_actor(actor=actor, agent_id=agent_id)
        data = validate_input(CardFreezeInputSerializer, request.data)
        cards = services.agent_cards_freeze(agent=agent, actor=actor, reason=data["reason"])
        return Response(
            {"agent_id": agent.pk, "changed": CardOutputSerializer(cards, many=True).data}
        )


class AgentUnfreezeApi(APIView):
    @extend_schema(
        operation_id="agents_unfreeze",
        request=CardUnfreezeInputSerializer,
        responses=AgentFreezeOutputSerializer,
    )
    def post(self, request: Request, agent_id: uuid.UUID) -> Response:
        actor = actor_from_request(request)
        agent = agent_get_for_actor(actor=actor, agent_id=agent_id)
        require_staff(actor)
        data = validate_input(CardUnfreezeInputSerializer, request.data)
        cards = services.agent_cards_unfreeze(agent=agent, actor=actor, reason=data["reason"])
        return Response(
            {"agent_id": agent.pk, "changed": CardOutputSerializer(cards, many=True).data}
        )
