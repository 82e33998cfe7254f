from __future__ import annotations

from django.apps import AppConfig


class LedgerConfig(AppConfig):
    name = "ledger"

    def ready(self) -> None:
        from ledger import (
            receivers,  # noqa: F401  (connects the counters to policy changes)
            schema,  # noqa: F401  (registers the OpenAPI extension)
        )
