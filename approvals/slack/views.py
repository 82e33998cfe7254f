"""POST /slack/interactivity: verify Slack's signature, acknowledge at once, queue the work."""

from __future__ import annotations

import json
import logging
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from slack_sdk.signature import SignatureVerifier

from agentwallet.lib.money import MAX_AMOUNT
from approvals.tasks import handle_slack_interaction_task

logger = logging.getLogger("agentwallet.slack")


@csrf_exempt  # Slack signs the request instead (checked first thing)
@require_POST
def slack_interactivity(request: HttpRequest) -> HttpResponse:
    secret = settings.SLACK_SIGNING_SECRET
    if not secret or not SignatureVerifier(secret).is_valid_request(
        request.body, dict(request.headers)
    ):
        logger.warning(
            "refused Slack request: bad signature or stale timestamp (from %s)",
            request.META.get("REMOTE_ADDR"),
        )
        return JsonResponse({"error": "invalid signature"}, status=401)
    try:
        payload = json.loads(request.POST["payload"])
        payload["user"]["id"]
    except (KeyError, TypeError, ValueError):
        return JsonResponse({"error": "malformed payload"}, status=400)

    if payload.get("type") == "view_submission":
        errors = _amount_errors(payload)
        if errors:  # Slack shows these in the modal, which stays open
            return JsonResponse({"response_action": "errors", "errors": errors})

    _queue(payload)
    return HttpResponse(status=200)  # Slack wants an answer within 3 seconds


def _amount_errors(payload: dict) -> dict[str, str]:
    try:
        raw = payload["view"]["state"]["values"]["amount"]["value"]["value"]
        amount = Decimal(str(raw).strip())
    except (KeyError, TypeError, InvalidOperation):
        return {"amount": "Enter an amount such as 25.00."}
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        return {"amount": "Enter a positive amount."}
    if amount != amount.quantize(Decimal("0.01")):
        return {"amount": "At most two decimal places."}
    return {}


def _queue(payload: dict) -> None:
    try:
        handle_slack_interaction_task.apply_async((payload,), retry=False)
    except Exception:  # the broker is down: do it now rather than lose the click
        logger.exception("could not queue a Slack interaction; handling it inline")
        handle_slack_interaction_task.apply(args=(payload,))
