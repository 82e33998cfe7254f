"""POST /slack/interactivity: verify Slack's signature, acknowledge at once, queue the work."""

from __future__ import annotations

import json
import logging
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from slack_sdk.signature import SignatureVerifier

from agentwallet.api.exceptions import error_body
from agentwallet.api.parsers import unusable_json
from approvals.slack.interactions import MalformedInteraction, interaction_parse
from approvals.tasks import handle_slack_interaction_task

logger = logging.getLogger("agentwallet.slack")


@csrf_exempt  # Slack signs the request instead (checked first thing)
def slack_interactivity(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _error(405, "method_not_allowed", "POST only.")
    try:
        body = request.body
    except RequestDataTooBig:
        return _error(413, "payload_too_large", "Request body is too large.")
    if not _signed_by_slack(body, request):
        logger.warning(
            "refused Slack request: bad signature or stale timestamp (from %s)",
            request.META.get("REMOTE_ADDR"),
        )
        return _error(401, "invalid_signature", "Missing, invalid or stale Slack signature.")
    try:
        payload = json.loads(request.POST["payload"])
        interaction = interaction_parse(payload)
    except (KeyError, ValueError, RecursionError) as exc:  # MalformedInteraction is one
        message = str(exc) if isinstance(exc, MalformedInteraction) else "Malformed payload."
        return _error(400, "malformed_payload", message)
    if unusable_json(payload):
        return _error(400, "malformed_payload", "The payload holds characters we cannot store.")

    if interaction.kind == "view_submission" and interaction.amount is None:
        # Slack shows these in the modal, which stays open.
        return JsonResponse(
            {"response_action": "errors", "errors": {"amount": "Enter an amount such as 25.00."}}
        )
    _queue(payload)
    return HttpResponse(status=200)  # Slack wants an answer within 3 seconds


def _signed_by_slack(body: bytes, request: HttpRequest) -> bool:
    """Slack's own verifier, given only what it can read: a timestamp of digits (it calls
    int() on it) and an ASCII signature (hmac.compare_digest refuses other str)."""
    secret = settings.SLACK_SIGNING_SECRET
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not secret or not TIMESTAMP.fullmatch(timestamp) or not signature.isascii():
        return False
    return SignatureVerifier(secret).is_valid(body, timestamp, signature)


TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(code, message), status=status)


def _queue(payload: dict) -> None:
    try:
        handle_slack_interaction_task.apply_async((payload,), retry=False)
    except Exception:  # the broker is down: do it now rather than lose the click
        logger.exception("could not queue a Slack interaction; handling it inline")
        handle_slack_interaction_task.apply(args=(payload,))
