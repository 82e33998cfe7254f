"""POST /webhooks/stripe: Stripe Issuing's signed events.

`issuing_authorization.request` is answered in the response itself, as Stripe's
real-time authorizations ask: 200, a `Stripe-Version` header and `{"approved": …,
"metadata": {…}}`, within AGENTWALLET_DECISION_DEADLINE_MS (Stripe waits 2 s). Anything
that goes wrong while deciding declines (fails closed). Other events are applied to the
ledger and acknowledged; one the database could not take answers 503, so Stripe sends
it again (the postings apply each once).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import stripe
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from agentwallet.api.exceptions import error_body
from agentwallet.db import deadline
from agentwallet.lib.errors import Conflict
from ledger.models import SYSTEM_UNAVAILABLE
from ledger.network import TOLERANCE_SECONDS, signed_at
from ledger.services.postings import NotFoundError
from ledger.services.stripe_events import RequestAnswer, authorization_request_answer, event_apply

logger = logging.getLogger("agentwallet.stripe")

SIGNATURE_HEADER = "Stripe-Signature"
AUTHORIZATION_REQUEST = "issuing_authorization.request"


@csrf_exempt  # Stripe signs the request instead (checked first thing)
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _error(405, "method_not_allowed", "POST only.")
    # The deadline runs from here: verifying, deciding and answering fit in it.
    with deadline.deadline(settings.AGENTWALLET_DECISION_DEADLINE_MS):
        try:
            body = request.body
        except RequestDataTooBig:
            return _error(413, "payload_too_large", "Request body is too large.")
        try:
            event = _verified_event(body, request.headers.get(SIGNATURE_HEADER))
        except Refused as refused:
            return _error(400, refused.code, str(refused))
        if event.get("type") == AUTHORIZATION_REQUEST:
            return _answer(_decide(event["data"]["object"]))
        return _apply(event)


class Refused(Exception):
    """The event is not Stripe's (signature) or not an event (body)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _verified_event(body: bytes, header: str | None) -> dict[str, Any]:
    """The event, when Stripe signed it within the tolerance: stripe's own verifier
    (constant-time comparison, age), and no signature from the future either. The body
    is then read as plain JSON: `Webhook.construct_event` would verify the same way and
    also build a StripeObject tree, a third of a millisecond per event (bench/README.md)."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret or not header or not header.isascii():
        raise Refused("invalid_signature", "Missing, invalid or stale Stripe signature.")
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        logger.warning("refused Stripe event: %s", str(exc).split(".")[0])
        raise Refused("invalid_signature", "Missing, invalid or stale Stripe signature.") from exc
    if signed_at(header) > time.time() + TOLERANCE_SECONDS:
        logger.warning("refused Stripe event: timestamp in the future")
        raise Refused("invalid_signature", "Missing, invalid or stale Stripe signature.")
    try:
        event = json.loads(body)
    except (ValueError, RecursionError) as exc:  # signed, not JSON
        raise Refused("malformed_event", "The body is not a Stripe event.") from exc
    data = event.get("data") if isinstance(event, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict) or not isinstance(event.get("id"), str):
        raise Refused("malformed_event", "The event has no id or no data.object.")
    return event


def _decide(auth: dict[str, Any]) -> RequestAnswer:
    try:
        return authorization_request_answer(auth)
    except (OperationalError, InterfaceError) as exc:  # down, cut off, timed out
        logger.warning(
            "Stripe authorization %s declined: database unavailable (%s)", auth.get("id"), exc
        )
    except Exception:  # a bug, or an event we cannot read: decline, and keep the traceback
        logger.exception("Stripe authorization %s declined: could not decide", auth.get("id"))
    return RequestAnswer(approved=False, reason=SYSTEM_UNAVAILABLE)


def _answer(answer: RequestAnswer) -> JsonResponse:
    response = JsonResponse({"approved": answer.approved, "metadata": answer.metadata()})
    response["Stripe-Version"] = settings.STRIPE_API_VERSION
    return response


def _apply(event: dict[str, Any]) -> HttpResponse:
    try:
        done = event_apply(event)
    except (OperationalError, InterfaceError) as exc:
        logger.warning(
            "Stripe event %s not applied: database unavailable (%s)", event.get("id"), exc
        )
        return _error(503, "system_unavailable", "Not applied; send the event again.")
    except (Conflict, NotFoundError, ValueError, KeyError, TypeError) as exc:
        # Sending it again would not change it: acknowledged, logged, and left for the
        # daily reconciliation to report.
        logger.warning(
            "Stripe event %s (%s) not applied: %s", event.get("id"), event.get("type"), exc
        )
        return JsonResponse({"received": True, "applied": False, "detail": str(exc)})
    except DatabaseError:
        logger.exception("Stripe event %s not applied: database error", event.get("id"))
        return _error(503, "system_unavailable", "Not applied; send the event again.")
    logger.info("Stripe event %s (%s): %s", event.get("id"), event.get("type"), done)
    return JsonResponse({"received": True, "applied": True, "detail": done})


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)
