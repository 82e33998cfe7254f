from __future__ import annotations

from typing import Any

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from wallets.actors import Actor, actor_from_request


class IsAuthenticatedActor(BasePermission):
    """A valid API key, or a logged-in portal user who is staff."""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and getattr(user, "is_active", False))


class IsStaffActor(IsAuthenticatedActor):
    message = "This action needs a staff key."

    def has_permission(self, request: Any, view: Any) -> bool:
        return super().has_permission(request, view) and actor_from_request(request).is_staff


def require_staff(actor: Actor) -> None:
    """For actions on an object the caller can see but only staff may do."""
    if not actor.is_staff:
        raise PermissionDenied(IsStaffActor.message)
