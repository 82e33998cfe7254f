"""Django's PostgreSQL backend, connecting within the request's deadline.

libpq's connect_timeout cannot be under 2 seconds, and a server that hangs accepts the
TCP connection and then says nothing. Under a deadline (agentwallet.db.deadline) the
connection is made by a small pool's thread and waited for only as long as the deadline
leaves; one that arrives too late is closed."""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any

from django.db import OperationalError
from django.db.backends.postgresql import base

from agentwallet.db import deadline

logger = logging.getLogger("agentwallet.deadline")

# Two at a time: while the database hangs, further requests wait their turn here and
# give up at their own deadline.
connector = concurrent.futures.ThreadPoolExecutor(
    max_workers=2, thread_name_prefix="agentwallet-connect"
)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        budget = deadline.connect_budget()
        if budget is None:
            return super().get_new_connection(conn_params)
        if budget <= 0:
            raise OperationalError("The request's deadline passed before connecting.")
        pending = connector.submit(super().get_new_connection, conn_params)
        try:
            return pending.result(timeout=budget)
        except concurrent.futures.TimeoutError:
            pending.add_done_callback(_close_late)
            raise OperationalError("Could not connect to the database in time.") from None


def _close_late(pending: concurrent.futures.Future[Any]) -> None:
    if pending.exception() is None:
        pending.result().close()
