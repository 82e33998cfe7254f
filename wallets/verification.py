"""A principal verifies their email through a signed link (Django's signing, no table):
until then a policy may hold their agents' card charges to a small amount
(Policy.unverified_charge_limit, decided as `principal_unverified`).

The link is mailed by a Celery task once the caller's transaction commits, retried while
the mail server is away; a new one at most once a minute per principal."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from agentwallet.audit import audit_record
from agentwallet.models import AuditAction
from wallets.models import Principal

_SALT = "agentwallet.principal-email.v1"
LINK_LIFETIME = timedelta(days=3)
RESEND_INTERVAL = timedelta(minutes=1)


class InvalidLink(Exception):
    """The link was altered, is for another address, or is too old."""


class ExpiredLink(InvalidLink):
    """A genuine link, too old: its principal may ask for a new one."""


def principal_subject(principal: Principal) -> str:
    return f"principal {principal.email}"


def verification_link(principal: Principal) -> str:
    """The link to mail: it names the principal and the address it was sent to, signed
    with SECRET_KEY and timed, so a changed address or an old link does not verify."""
    token = signing.dumps({"principal": principal.pk, "email": principal.email}, salt=_SALT)
    path = reverse("principal-verify", kwargs={"token": token})
    return f"{settings.AGENTWALLET_PORTAL_URL.rstrip('/')}{path}"


def verification_mail(principal: Principal) -> None:
    """Mail a fresh link (the console backend prints it in the embedded default)."""
    send_mail(
        subject="Verify your email for AgentWallet",
        message=(
            "An agent you are accountable for was set up in AgentWallet. Until you "
            "verify this address its cards may be held to small charges.\n\n"
            f"Verify: {verification_link(principal)}\n\n"
            f"The link works for {LINK_LIFETIME.days} days."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[principal.email],
    )


def verification_send(principal: Principal, *, actor: str = "") -> bool:
    """Mail the principal a link once the caller's transaction commits, unless they are
    verified or one went out less than a minute ago (then False, nothing sent). `actor`:
    who asked for it again (audited); provisioning's own mail is in its audit row."""
    from wallets.tasks import principal_verification_mail_task  # it imports this module

    now = timezone.now()
    with transaction.atomic():
        principal = Principal.objects.select_for_update().get(pk=principal.pk)
        sent = principal.verification_sent_at
        if principal.email_verified_at is not None or (
            sent is not None and now - sent < RESEND_INTERVAL
        ):
            return False
        principal.verification_sent_at = now
        principal.save(update_fields=["verification_sent_at"])
        if actor:
            audit_record(
                actor=actor,
                action=AuditAction.PRINCIPAL_LINK_SENT,
                subject=principal_subject(principal),
                object_id=principal.pk,
            )
        principal_id = principal.pk
        transaction.on_commit(
            lambda: principal_verification_mail_task.delay(principal_id), robust=True
        )
    return True


def _link_principal(token: str, *, lock: bool = False) -> tuple[Principal, bool]:
    """The principal a genuine link names (locked, with `lock`), and whether the link has
    expired; a forged link, or one for an address the principal no longer has, is
    InvalidLink."""
    try:
        claim, expired = signing.loads(token, salt=_SALT, max_age=LINK_LIFETIME), False
    except signing.SignatureExpired:
        claim, expired = signing.loads(token, salt=_SALT), True  # genuine, only old
    except signing.BadSignature as error:
        raise InvalidLink("This link is not valid.") from error
    principals = Principal.objects.select_for_update() if lock else Principal.objects
    principal = principals.filter(pk=claim.get("principal")).first()
    if principal is None or principal.email != claim.get("email"):
        raise InvalidLink("This link is not valid for this address any more.")
    return principal, expired


def principal_verify(*, token: str) -> Principal:
    """Verify the principal the link names, once it checks out; verifying again is fine."""
    with transaction.atomic():
        principal, expired = _link_principal(token, lock=True)
        if expired:
            raise ExpiredLink("This link has expired.")
        if principal.email_verified_at is None:
            principal.email_verified_at = timezone.now()
            principal.save(update_fields=["email_verified_at"])
            audit_record(
                actor=f"principal:{principal.email}",
                action=AuditAction.PRINCIPAL_VERIFIED,
                subject=principal_subject(principal),
                object_id=principal.pk,
                detail={"agents": sorted(principal.agents.values_list("name", flat=True))},
            )
    return principal


def verification_resend_for_expired(*, token: str) -> tuple[Principal, bool]:
    """A new link for the principal an expired (genuine) link names, to the same address:
    the principal and whether it went out (not within a minute of the last)."""
    principal, expired = _link_principal(token)
    if not expired:
        raise InvalidLink("This link still works: use it to verify.")
    return principal, verification_send(principal, actor=f"principal:{principal.email}")
