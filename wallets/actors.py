"""Who is acting: an agent key, a staff key, a portal user or the system."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    """The caller of a service, recorded in history rows as `label`.

    Also serves as DRF's `request.user` for key-authenticated requests.
    """

    label: str
    is_staff: bool
    agent_id: uuid.UUID | None = None
    key_id: str | None = None

    is_authenticated = True
    is_active = True

    def __str__(self) -> str:
        return self.label

    def can_act_on(self, agent_id: uuid.UUID) -> bool:
        return self.is_staff or self.agent_id == agent_id

    @classmethod
    def system(cls, what: str = "system") -> Actor:
        return cls(label=what, is_staff=True)

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(label=f"user:{user.get_username()}", is_staff=bool(user.is_staff))


def actor_from_request(request: Any) -> Actor:
    user = request.user
    if isinstance(user, Actor):
        return user
    return Actor.for_user(user)
