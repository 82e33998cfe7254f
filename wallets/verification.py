"""A principal verifies their email through a signed link (Django's signing, no table):
until then a policy may hold their agents' card charges to a small amount
(Policy.unverified_charge_limit, decided as `principal_unverified`)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from wallets.models import Principal

_SALT = "agentwallet.principal-email.v1"
LINK_LIFETIME = timedelta(days=3)


class InvalidLink(Exception):
    """The link was altered, is for another address, or is too old."""


def verification_link(principal: Principal) -> str:
    """The link to mail: it names the principal and the address it was sent to, signed
    with SECRET_KEY and timed, so a changed address or an old link does not verify."""
    token = signing.dumps({"principal": principal.pk, "email": principal.email}, salt=_SALT)
    path = reverse("principal-verify", kwargs={"token": token})
    return f"{settings.AGENTWALLET_PORTAL_URL.rstrip('/')}{path}"


def verification_send(principal: Principal) -> None:
    """Mail the link once the caller's transaction commits (the console backend prints
    it in the embedded default)."""
    link = verification_link(principal)

    def send() -> None:
        send_mail(
            subject="Verify your email for AgentWallet",
            message=(
                "An agent you are accountable for was set up in AgentWallet. Until you "
                "verify this address its cards may be held to small charges.\n\n"
                f"Verify: {link}\n\nThe link works for {LINK_LIFETIME.days} days."
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[principal.email],
        )

    transaction.on_commit(send, robust=True)


def principal_verify(*, token: str) -> Principal:
    """Verify the principal the link names, once it checks out; verifying again is fine."""
    try:
        claim = signing.loads(token, salt=_SALT, max_age=LINK_LIFETIME)
    except signing.SignatureExpired as error:
        raise InvalidLink("This link has expired: ask for a new one.") from error
    except signing.BadSignature as error:
        raise InvalidLink("This link is not valid.") from error
    with transaction.atomic():
        principal = Principal.objects.select_for_update().filter(pk=claim.get("principal")).first()
        if principal is None or principal.email != claim.get("email"):
            raise InvalidLink("This link is not valid for this address any more.")
        if principal.email_verified_at is None:
            principal.email_verified_at = timezone.now()
            principal.save(update_fields=["email_verified_at"])
    return principal
