"""Authentication of the card network's requests: an HMAC signature, as Stripe signs
webhooks (`AgentWallet-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`)."""

from __future__ import annotations

import logging
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


def signature_verify(body: bytes, header: str | None, *, path: str) -> None:
    """Raise SignatureError unless `header` signs `body` with the network secret."""
    secret = settings.AGENTWALLET_NETWORK_SECRET
    if not secret:
        raise SignatureError("The network endpoint is not configured.")
    try:
        # stripe's verifier: parses t= and v1=, compares in constant time, checks age.
        stripe.WebhookSignature.verify_header(body, header, secret, TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        logger.warning("refused network request to %s: %s", path, str(exc).split(".")[0])
        raise SignatureError("Missing, invalid or stale signature.") from exc


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
