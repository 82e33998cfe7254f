"""A request's deadline for the database: the card network's endpoints answer within
AGENTWALLET_DECISION_DEADLINE_MS, whatever the database does.

Three bounds, each for what the one before cannot see:
- the server's own `statement_timeout` and `lock_timeout`, set for the transaction to
  what is left of the deadline (a lock held too long, a slow statement): the server
  cancels the statement and the connection stays usable;
- connecting is bounded by what is left (agentwallet.db.postgresql), since libpq's
  connect_timeout cannot be under 2 seconds;
- a watchdog thread that, when the deadline passes while a query is still waiting,
  shuts the connection's socket down: a server that hangs (stopped, or behind a network
  that dropped it) cancels nothing, and the request would wait for it as long as TCP
  lets it. The query then fails at once, the caller answers `system_unavailable`, and
  the broken connection is closed before the next request.

Outside a deadline (Celery, commands, tests calling services) all of this does nothing.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, OperationalError, connection, connections

logger = logging.getLogger("agentwallet.deadline")

# The server gives up this much before the deadline, so that its clean error (and the
# decline) still leaves in time; the watchdog acts this much before it.
SERVER_MARGIN_S = 0.2
WATCHDOG_MARGIN_S = 0.1


@dataclass(eq=False)
class Deadline:
    expires_at: float  # time.monotonic()
    database: Any  # the DatabaseWrapper of the thread that runs the request
    fired: bool = False

    def remaining(self) -> float:
        return self.expires_at - time.monotonic()


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "agentwallet_deadline", default=None
)


def current() -> Deadline | None:
    return _current.get()


@contextmanager
def deadline(milliseconds: int) -> Iterator[Deadline]:
    """Bound the database work of the block to `milliseconds` from now."""
    # The wrapper itself: `connection` is a proxy that resolves in the calling thread,
    # and the watchdog runs in another.
    bound = Deadline(time.monotonic() + milliseconds / 1000, connections[DEFAULT_DB_ALIAS])
    token = _current.set(bound)
    _watchdog.arm(bound)
    try:
        yield bound
    finally:
        _watchdog.disarm(bound)
        _current.reset(token)
        if bound.fired:
            # Its socket was shut down: let the next request connect afresh.
            bound.database.close()


def transaction_timeouts(cursor: Any = None) -> None:
    """The first statement of a transaction under a deadline: the server cancels any
    statement or lock wait of it that would outlast what is left. Raises (as a database
    error) when nothing is left."""
    bound = _current.get()
    if bound is None or connection.vendor != "postgresql":
        return
    if cursor is None:
        with connection.cursor() as own:
            transaction_timeouts(own)
        return
    left_ms = int((bound.remaining() - SERVER_MARGIN_S) * 1000)
    if left_ms <= 0:
        raise OperationalError("The request's deadline passed before its transaction.")
    cursor.execute(
        "SELECT set_config('statement_timeout', %(ms)s, true), "
        "set_config('lock_timeout', %(ms)s, true)",
        {"ms": f"{left_ms}ms"},
    )


def connect_budget() -> float | None:
    """Seconds a new connection may take now, or None when no deadline applies."""
    bound = _current.get()
    return None if bound is None else bound.remaining() - WATCHDOG_MARGIN_S


def _cut_off(bound: Deadline) -> None:
    """Shut the socket of the request's connection down (from the watchdog's thread):
    the request's blocked read returns at once with an error."""
    raw = getattr(bound.database, "connection", None)
    pgconn = getattr(raw, "pgconn", None)
    fd = getattr(pgconn, "socket", -1) if pgconn is not None else -1
    if fd is None or fd < 0:
        return  # not connected (connecting is bounded separately)
    bound.fired = True
    try:
        # A duplicate of the descriptor: shutting it down ends the connection itself,
        # and closing the duplicate leaves the original for psycopg to close.
        with socket.socket(fileno=socket.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # closed meanwhile
    logger.warning("database did not answer within the deadline; connection cut off")


@dataclass(order=True)
class _Armed:
    fires_at: float
    seq: int
    bound: Deadline = field(compare=False)


class _Watchdog:
    """One thread per process, started on first use, sleeping until the earliest armed
    deadline. Arming one that is later than its next wake-up (the usual case: one
    request after another) does not wake it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[_Armed] = []
        self._armed: set[Deadline] = set()
        self._seq = itertools.count()
        self._wakes_at: float | None = None
        self._thread: threading.Thread | None = None

    def arm(self, bound: Deadline) -> None:
        fires_at = bound.expires_at - WATCHDOG_MARGIN_S
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                # Started here, not at import: gunicorn forks workers after loading.
                self._thread = threading.Thread(
                    target=self._run, name="agentwallet-deadline", daemon=True
                )
                self._thread.start()
            self._armed.add(bound)
            heapq.heappush(self._heap, _Armed(fires_at, next(self._seq), bound))
            if self._wakes_at is None or fires_at < self._wakes_at:
                self._cond.notify()

    def disarm(self, bound: Deadline) -> None:
        with self._cond:
            self._armed.discard(bound)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (
                    self._heap[0].bound not in self._armed or self._heap[0].fires_at <= now
                ):
                    due = heapq.heappop(self._heap)
                    if due.bound in self._armed:
                        self._armed.discard(due.bound)
                        _cut_off(due.bound)
                self._wakes_at = self._heap[0].fires_at if self._heap else None
                self._cond.wait(None if self._wakes_at is None else self._wakes_at - now)


_watchdog = _Watchdog()
