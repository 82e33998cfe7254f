"""Authentication of the card network's requests: an HMAC signature, as Stripe signs
webhooks (`AgentWallet-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import stripe
from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from wallets.actors import Actor

logger = logging.getLogger("agentwallet.network")

SIGNATURE_HEADER = "AgentWallet-Signature"
TOLERANCE_SECONDS = 300
NETWORK_ACTOR = Actor(label="card-network", is_staff=False)


class SignatureError(Exception):
    """The request is not signed by the network (missing, invalid or stale)."""


def sign(payload: bytes, *, secret: str, timestamp: int | None = None) -> str:
    """The header value a processor sends (used by the sandbox network)."""
    return stripe.WebhookSignature.generate_signature_header(
        payload.decode("utf-8"), secret, timestamp=timestamp
    )


def signature_verify(
    body: bytes, header: str | None, *, path: str, now: float | None = None
) -> None:
    """Raise SignatureError unless `header` signs `body` with the network secret, at a
    time no more than the tolerance away from now in either direction (stripe's verifier
    refuses only the past: a body signed ten years ahead would never expire)."""
    secret = settings.AGENTWALLET_NETWORK_SECRET
    if not secret:
        raise SignatureError("The network endpoint is not configured.")
    if header is None or not header.isascii():  # compare_digest refuses non-ASCII str
        _refuse(path, "no signature, or not ASCII")
    try:
        # stripe's verifier: parses t= and v1=, compares in constant time, checks age.
        stripe.WebhookSignature.verify_header(body, header, secret, TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        _refuse(path, str(exc).split(".")[0], exc)
    if signed_at(header) > (now if now is not None else time.time()) + TOLERANCE_SECONDS:
        _refuse(path, "timestamp in the future")


def signed_at(header: str) -> int:
    """The header's first `t=`, the one stripe's verifier checked the signature with."""
    for item in header.split(","):
        parts = item.split("=", 2)  # as stripe splits it
        if parts[0] == "t":
            return int(parts[1])
    raise SignatureError("No timestamp.")  # unreachable: verify_header needs one


def _refuse(path: str, why: str, cause: Exception | None = None) -> None:
    logger.warning("refused network request to %s: %s", path, why)
    raise SignatureError("Missing, invalid or stale signature.") from cause


def payload_sha256(data: Any) -> str:
    """A digest of a request's JSON, whatever its spacing or key order: the same event
    sent again is recognised; the same id with another payload is not."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class NetworkSignatureAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[Actor, str]:
        try:
            signature_verify(
                request.body, request.META.get("HTTP_AGENTWALLET_SIGNATURE"), path=request.path
            )
        except SignatureError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return NETWORK_ACTOR, "network-signature"

    def authenticate_header(self, request: Any) -> str:
        return SIGNATURE_HEADER


class IsNetwork(BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        return request.auth == "network-signature"
