"""Bearer API keys for agents and staff (`Authorization: Bearer <key>`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework import authentication, exceptions

from wallets.actors import Actor
from wallets.models import ApiKey, ApiKeyKind

LAST_USED_GRANULARITY = timedelta(minutes=1)


class BearerKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Any) -> tuple[Actor, ApiKey] | None:
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            raw_key = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Malformed API key.") from exc
        return self.authenticate_key(raw_key)

    def authenticate_key(self, raw_key: str) -> tuple[Actor, ApiKey]:
        try:
            key = ApiKey.objects.get_from_key(raw_key)
        except ApiKey.DoesNotExist as exc:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.") from exc
        now = timezone.now()
        if key.has_expired:
            raise exceptions.AuthenticationFailed("API key has expired.")
        if key.last_used_at is None or now - key.last_used_at > LAST_USED_GRANULARITY:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        if key.kind == ApiKeyKind.STAFF:
            actor = Actor(label=f"staff-key:{key.prefix}", is_staff=True, key_id=key.pk)
        else:
            actor = Actor(
                label=f"agent-key:{key.prefix}",
                is_staff=False,
                agent_id=key.agent_id,
                key_id=key.pk,
            )
        return actor, key

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
