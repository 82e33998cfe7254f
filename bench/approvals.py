"""Benchmark: what the approval outbox costs a cap decline, and how soon Slack hears of it.

Run from the project root (about 4 minutes on 2 cores; `--quick` is a smoke run):

    .venv/bin/python bench/approvals.py [--quick]
        [--postgres-url postgres://postgres@127.0.0.1:5432/agentwallet_bench]
        [--parts inprocess,delivery] [--modes redis,closed,eager]
        [--output bench/results/approvals.json]

PostgreSQL only. Each child process works on a freshly recreated bench database (dropped
on every run) and starts what it needs on 127.0.0.1: a redis-server of its own, the fake
Slack Web API of the test suite (`approvals.tests.fake_slack`) and, for part 2, a real
Celery worker. The parent prints the tables and verdicts and writes JSON (with machine
info and the git commit).

1. In-process decision latency, `ledger.services.authorization_decide` called directly,
   the classes interleaved round by round (shuffled order) so they share the same noise:
   an approval (no outbox), two plain declines (card_frozen, mcc_not_allowed: nothing
   written to the outbox), the first cap decline of an agent at the edge of its daily cap
   (ApprovalRequest + OutboxMessage + after-commit hand-off; one fresh agent per sample),
   a repeated cap decline attaching to the open request (an UPDATE), and two
   counterfactuals made by switching product functions off inside the bench process: the
   first cap decline with `outbox_add` stubbed (request row, no outbox row) and a cap
   decline with `approval_request_for_decline` stubbed (neither). Run once per broker
   mode: `redis` (a live Redis, no worker consuming), `closed` (REDIS_URL points at a
   closed port: every hand-off fails) and `eager` (no REDIS_URL, the embedded default:
   Celery runs inline, against the fake Slack). Also statements per class, and (redis
   mode) first cap declines of agents with a large rolling day of traced ledger rows,
   which the approval card's top-traces query reads inside the decision's transaction.
2. Decline to Slack: a real worker (`celery -A agentwallet worker -Q celery,slack -P solo`)
   delivering to the fake Slack. Paced (one decline, wait for its card) and burst (all
   declines back to back) time from the decision returning to chat.postMessage reaching
   Slack; chat.postMessage cards must equal the approval requests, each posted once.
   Then Redis is stopped, more declines are made, Redis is restarted on the same port and
   one `sweep_outbox_task` is queued: every card delivered once after recovery.

Target (the issue): the decision with the outbox write under 10% slower than without,
judged as the p50 of the first cap decline (and of the attaching decline) over the p50 of
a plain card_frozen decline, in the redis and closed modes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_POSTGRES_URL,
    ROOT,
    format_rows,
    last_json_line,
    latency_summary,
    machine_info,
    recreate_postgres_database,
    write_json,
)
from authorize import CpuMeter, PostgresPids  # CPU accounting per process group (/proc)

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_OUTPUT = ROOT / "bench" / "results" / "approvals.json"
PARTS = ("inprocess", "delivery")
MODES = ("redis", "closed", "eager")
VERDICT_MODES = ("redis", "closed")
CHANNEL = "C0BENCH"
CHILD_TIMEOUT_S = 360
FOREIGN_WARN_PCT = 25.0  # of one core: figures taken beside this much other work are flagged
QUIET_PCT = 15.0
TARGET_RATIO = 1.10  # first / attaching cap decline p50 over the plain decline p50
DAILY_CAP = Decimal("10")
EDGE_AMOUNT = "10.00"  # one approved charge brings an agent to its daily cap
SMALL_AMOUNT = "0.01"
PRINCIPALS = 20
HEAVY_TRACES = 50
REDIS_FLAGS = ("--save", "", "--appendonly", "no")

# Classes of part 1, in report order: key -> (label, expected reason).
CLASSES: dict[str, tuple[str, str]] = {
    "approve": ("(a) approval, no outbox", "approved"),
    "decline_frozen": ("plain decline: card_frozen", "card_frozen"),
    "decline_mcc": ("plain decline: mcc_not_allowed", "mcc_not_allowed"),
    "cap_stub_request": ("cap decline, approval stubbed", "daily_cap_exceeded"),
    "cap_stub_outbox": ("first cap decline, outbox stubbed", "daily_cap_exceeded"),
    "cap_first": ("(b) first cap decline + outbox", "daily_cap_exceeded"),
    "cap_attach": ("(c) cap decline attaching", "daily_cap_exceeded"),
}
BASELINE = "decline_frozen"
Verdict = tuple[str, bool]


@dataclass(frozen=True)
class Sizes:
    n: int = 400  # timed samples per class and mode
    warmup: int = 20  # untimed rounds first
    base_agents: int = 40  # approvals and mcc declines, round robin
    frozen_agents: int = 20
    stub_agents: int = 20  # at the edge, reused by the "approval stubbed" class
    attach_agents: int = 40  # one open request each, reused by the attaching class
    query_sample: int = 10
    heavy_agents: int = 15
    heavy_entries: int = 10_000  # traced ledger rows in each heavy agent's rolling day
    eager_n: int = 150
    paced: int = 50
    burst: int = 50
    down: int = 10  # each hand-off fails in ~2 s while Redis is down (see README)
    post_timeout_s: float = 20.0
    duplicate_grace_s: float = 2.0


QUICK = Sizes(
    n=120,
    warmup=10,
    base_agents=20,
    frozen_agents=10,
    stub_agents=10,
    attach_agents=20,
    query_sample=5,
    heavy_agents=5,
    heavy_entries=5_000,
    eager_n=60,
    paced=20,
    burst=20,
    down=5,
)


def log(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")  # one write: no interleaving
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def summary(durations_ns: Sequence[int]) -> dict[str, Any]:
    return {"n": len(durations_ns), **latency_summary(durations_ns)}


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 3)


# --- Processes of our own: redis-server, the Celery worker --------------------------


class RedisServer:
    """A redis-server on a loopback port of ours, stoppable and restartable."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> float:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", *REDIS_FLAGS],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


class CeleryWorker:
    """`celery -A agentwallet worker` on both queues, solo pool, logging to a file."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.log_path = Path(tempfile.gettempdir()) / f"agentwallet-bench-worker-{os.getpid()}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "agentwallet",
            "worker",
            "-Q",
            "celery,slack",
            "-P",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ]

    def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 15) -> list[str]:
        try:
            return self.log_path.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return []

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


class StampedCalls(list):  # type: ignore[type-arg]
    """The fake Slack's call list, also noting when each call arrived (perf_counter_ns).

    The fake appends under its own lock, so `stamps[i]` belongs to `self[i]`."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[int] = []

    def append(self, item: Any) -> None:
        self.stamps.append(time.perf_counter_ns())
        super().append(item)


def start_stamped_fake_slack() -> Any:
    from approvals.tests.fake_slack import start_fake_slack

    fake = start_fake_slack()
    fake.calls = StampedCalls()
    return fake


def approval_cards(fake: Any) -> list[tuple[str, int]]:
    """(approval id, arrival ns) of every successful chat.postMessage with buttons."""
    with fake.lock:
        calls = list(zip(fake.calls, fake.calls.stamps, strict=True))
    cards = []
    for call, stamp in calls:
        if call.method != "chat.postMessage" or not call.ok:
            continue
        blocks = call.body.get("blocks") or []
        if isinstance(blocks, str):  # form-encoded bodies carry blocks as JSON text
            blocks = json.loads(blocks)
        if blocks and blocks[-1].get("type") == "actions":
            cards.append((str(blocks[-1]["elements"][0]["value"]), stamp))
    return cards


def slack_method_counts(fake: Any) -> dict[str, int]:
    with fake.lock:
        return dict(Counter(f"{c.method}{'' if c.ok else ' (failed)'}" for c in fake.calls))


class LogCounter(logging.Handler):
    """Counts the records of one logger (the publisher's warnings), keeps one sample."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.counts: Counter[str] = Counter()
        self.sample: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        key = "could not queue" if "could not queue" in message else record.levelname
        self.counts[key] += 1
        self.sample.setdefault(key, message[:300])


def quiet_slack_logger() -> LogCounter:
    counter = LogCounter()
    logger = logging.getLogger("agentwallet.slack")
    logger.addHandler(counter)
    logger.propagate = False
    return counter


def wait_hand_off(timeout: float) -> float | None:
    """Seconds until the in-process publisher queue was empty (None: still busy)."""
    from approvals import dispatch

    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while dispatch._pending.unfinished_tasks:
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return round(time.perf_counter() - started, 3)


def wait_quiet(limit_s: float, postgres: Any, server_pid: int | None) -> dict[str, float]:
    """Wait (at most `limit_s`) until other processes leave the machine nearly idle.

    The machine may be shared (a test suite beside the bench); the interleaved classes
    share whatever noise there is, and every phase reports the CPU of other processes."""
    started = time.monotonic()
    foreign = 0.0
    while True:
        meter = CpuMeter(postgres=postgres, server_pid=server_pid)
        meter.start()
        time.sleep(0.5)
        foreign = meter.stop()["foreign_cpu_pct"]
        if foreign < QUIET_PCT or time.monotonic() - started > limit_s:
            break
    return {"waited_for_quiet_s": round(time.monotonic() - started, 1), "foreign_before": foreign}


# --- Fixtures shared by both parts ------------------------------------------------------


class Fixtures:
    """Policy, agents and request builders on the bench database (after django.setup)."""

    def __init__(self, slug: str) -> None:
        from policies.models import Vendor
        from policies.services import policy_create
        from wallets.actors import Actor

        self.actor = Actor.system("bench")
        self.policy = policy_create(
            slug=slug,
            name=f"Bench {slug}",
            currency="USD",
            daily_cap=DAILY_CAP,
            monthly_cap=Decimal("1000"),
            default_vendors=[Vendor.objects.get(slug="openai")],
        )
        self.ids = itertools.count()
        self.provision_ns: list[int] = []

    def agent_card(self, name: str) -> Any:
        from wallets.services import agent_provision

        index = next(self.ids)
        t0 = time.perf_counter_ns()
        provisioned = agent_provision(
            name=f"{name}-{index:05d}",
            principal_email=f"bench-principal-{index % PRINCIPALS:02d}@example.com",
            policy=self.policy,
            actor=self.actor,
        )
        self.provision_ns.append(time.perf_counter_ns() - t0)
        return provisioned.cards[0].card

    def request(self, card: Any, amount: str, mcc: str | None = None, trace_id: str = "") -> Any:
        from ledger.services import AuthorizationRequest

        return AuthorizationRequest(
            network_id=f"bench-{next(self.ids)}-{secrets.token_hex(4)}",
            card_id=str(card.pk),
            amount=Decimal(amount),
            currency="USD",
            merchant_mcc=mcc or card.allowed_mccs[0],
            merchant_name="bench",
            merchant_country="US",
            trace_id=trace_id,
        )

    def decide(self, card: Any, amount: str, mcc: str | None = None, trace_id: str = "") -> Any:
        from ledger.services import authorization_decide

        return authorization_decide(request=self.request(card, amount, mcc, trace_id)).authorization

    def edge_card(self, name: str, trace_id: str = "") -> Any:
        """A fresh agent whose one approved charge used its whole daily cap."""
        card = self.agent_card(name)
        auth = self.decide(card, EDGE_AMOUNT, trace_id=trace_id)
        if auth.decision != "approved":
            raise RuntimeError(f"edge charge not approved: {auth.decision} {auth.reason}")
        return card


def outcome_of(auth: Any) -> str:
    return str(auth.reason or auth.decision)


SQL_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?([a-z_]+)"?', re.IGNORECASE)


def sql_label(sql: str) -> str:
    words = sql.split(None, 1)
    verb = words[0].upper() if words else "?"
    if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT"):
        return verb
    match = SQL_TABLE.search(sql)
    return f"{verb} {match.group(1) if match else '?'}"


# --- Part 1: in-process decision latency -------------------------------------------------


class Switches:
    """Turn product functions off in this process, per call (the counterfactuals)."""

    def __init__(self) -> None:
        import approvals.services as approval_services
        import ledger.services as ledger_services

        self.outbox_off = False
        self.request_off = False
        real_outbox_add = approval_services.outbox_add
        real_for_decline = ledger_services.approval_request_for_decline

        def outbox_add(**kwargs: Any) -> Any:
            return None if self.outbox_off else real_outbox_add(**kwargs)

        def approval_request_for_decline(**kwargs: Any) -> Any:
            # Switched off: a decline that opens no request (no id to record).
            if self.request_off:
                return types.SimpleNamespace(pk=None)
            return real_for_decline(**kwargs)

        approval_services.outbox_add = outbox_add
        ledger_services.approval_request_for_decline = approval_request_for_decline

    @contextlib.contextmanager
    def off(self, *, outbox: bool = False, request: bool = False) -> Iterator[None]:
        self.outbox_off, self.request_off = outbox, request
        try:
            yield
        finally:
            self.outbox_off = self.request_off = False


def run_inprocess(
    mode: str, sizes: Sizes, env_info: dict[str, Any], server_pid: int | None
) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from agentwallet.celery import app as celery_app
    from approvals import dispatch
    from approvals.models import ApprovalRequest, OutboxKind, OutboxMessage
    from cards.services import card_freeze

    conf = {k: celery_app.conf[k] for k in ("task_always_eager", "broker_url")}
    expected_eager = mode == "eager"
    if bool(conf["task_always_eager"]) != expected_eager:
        raise RuntimeError(f"celery conf does not match mode {mode}: {conf}")
    n = sizes.eager_n if mode == "eager" else sizes.n
    rounds = sizes.warmup + n
    fx = Fixtures(f"bench-approvals-{mode}")
    switches = Switches()

    log(f"[{mode}] setup: provisioning agents")
    t0 = time.perf_counter()
    base = [fx.agent_card("base") for _ in range(sizes.base_agents)]
    frozen = [fx.agent_card("frozen") for _ in range(sizes.frozen_agents)]
    for card in frozen:
        card_freeze(card=card, actor=fx.actor, reason="bench: plain decline")
    stub = [fx.edge_card("stub") for _ in range(sizes.stub_agents)]
    attach = [fx.edge_card("attach") for _ in range(sizes.attach_agents)]
    fresh_first = [fx.edge_card("first") for _ in range(rounds + sizes.query_sample)]
    fresh_stub = [fx.edge_card("first-stub") for _ in range(rounds + sizes.query_sample)]
    # The attaching class needs an open request on each of its agents (untimed).
    opened = [fx.decide(card, SMALL_AMOUNT) for card in attach]
    attach_requests = {a.approval_request_id for a in opened}
    if None in attach_requests or len(attach_requests) != len(attach):
        raise RuntimeError("priming the attaching agents did not open one request each")
    setup_s = time.perf_counter() - t0
    bad_mcc = next(m for m in ("0000", "9999", "1234") if m not in base[0].allowed_mccs)
    # With the broker port closed every hand-off fails slowly (kombu's connect retries), so
    # the publisher's backlog is reported, not waited for.
    drain_timeout = 0.0 if mode == "closed" else 120.0
    drain_setup_s = wait_hand_off(drain_timeout)

    def sample(key: str, i: int) -> Callable[[], Any]:
        if key == "approve":
            return lambda: fx.decide(base[i % len(base)], SMALL_AMOUNT)
        if key == "decline_frozen":
            return lambda: fx.decide(frozen[i % len(frozen)], SMALL_AMOUNT)
        if key == "decline_mcc":
            return lambda: fx.decide(base[i % len(base)], SMALL_AMOUNT, mcc=bad_mcc)
        if key == "cap_stub_request":
            return lambda: fx.decide(stub[i % len(stub)], SMALL_AMOUNT)
        if key == "cap_stub_outbox":
            return lambda: fx.decide(fresh_stub[i], SMALL_AMOUNT)
        if key == "cap_first":
            return lambda: fx.decide(fresh_first[i], SMALL_AMOUNT)
        return lambda: fx.decide(attach[i % len(attach)], SMALL_AMOUNT)

    def switched(key: str) -> contextlib.AbstractContextManager[None]:
        if key == "cap_stub_request":
            return switches.off(request=True)
        if key == "cap_stub_outbox":
            return switches.off(outbox=True)
        return contextlib.nullcontext()

    log(f"[{mode}] timing {len(CLASSES)} classes x {n} interleaved ({sizes.warmup} warm-up rounds)")
    durations: dict[str, list[int]] = {key: [] for key in CLASSES}
    outcomes: dict[str, Counter[str]] = {key: Counter() for key in CLASSES}
    approvals: dict[str, list[int | None]] = {key: [] for key in CLASSES}
    order = list(CLASSES)
    rng = random.Random(20240611)
    postgres = PostgresPids(os.environ["DATABASE_URL"])
    quiet = wait_quiet(10.0, postgres, server_pid)
    meter = CpuMeter(postgres=postgres, server_pid=server_pid)
    meter.start()
    measure_started = time.perf_counter()
    for r in range(rounds):
        rng.shuffle(order)
        for key in order:
            call = sample(key, r)
            with switched(key):
                t0_ns = time.perf_counter_ns()
                auth = call()
                elapsed = time.perf_counter_ns() - t0_ns
            if r >= sizes.warmup:
                durations[key].append(elapsed)
                outcomes[key][outcome_of(auth)] += 1
                approvals[key].append(auth.approval_request_id)
    measure_s = time.perf_counter() - measure_started
    cpu = {**meter.stop(), **quiet}
    postgres.close()
    drain_s = wait_hand_off(drain_timeout)
    backlog_after_rounds = dispatch._pending.qsize()

    # What each class wrote (checked in the database after the timed rounds).
    first_ids = [a for a in approvals["cap_first"] if a is not None]
    stub_ids = [a for a in approvals["cap_stub_outbox"] if a is not None]
    checks = {
        "cap_first_requests": len(set(first_ids)),
        "cap_first_outbox_rows": OutboxMessage.objects.filter(
            approval_id__in=first_ids, kind=OutboxKind.APPROVAL_REQUEST
        ).count(),
        "cap_stub_outbox_requests": len(set(stub_ids)),
        "cap_stub_outbox_outbox_rows": OutboxMessage.objects.filter(
            approval_id__in=stub_ids
        ).count(),
        "cap_stub_request_requests": sum(a is not None for a in approvals["cap_stub_request"]),
        "cap_attach_outside_open_requests": sum(
            a not in attach_requests for a in approvals["cap_attach"]
        ),
        "cap_attach_declines_attached": sum(
            ApprovalRequest.objects.filter(pk__in=attach_requests).values_list(
                "declines_attached", flat=True
            )
        ),
        "outbox_rows_total": OutboxMessage.objects.count(),
        "outbox_rows_by_status": dict(
            Counter(OutboxMessage.objects.values_list("status", flat=True))
        ),
    }
    checks["ok"] = (
        checks["cap_first_requests"] == n
        and checks["cap_first_outbox_rows"] == n
        and checks["cap_stub_outbox_requests"] == n
        and checks["cap_stub_outbox_outbox_rows"] == 0
        and checks["cap_stub_request_requests"] == 0
        and checks["cap_attach_outside_open_requests"] == 0
        and all(outcomes[key] == Counter({expected: n}) for key, (_, expected) in CLASSES.items())
    )

    log(f"[{mode}] statements per class ({sizes.query_sample} samples each)")
    queries: dict[str, Any] = {}
    for key in CLASSES:
        counts: list[int] = []
        labels: Counter[str] = Counter()
        for j in range(sizes.query_sample):
            call = sample(key, rounds + j)
            with switched(key), CaptureQueriesContext(connection) as captured:
                call()
            counts.append(len(captured.captured_queries))
            if j == 0:
                labels = Counter(sql_label(q["sql"]) for q in captured.captured_queries)
        queries[key] = {"median": statistics.median(counts), "max": max(counts)}
        queries[key]["statements"] = dict(labels)
    wait_hand_off(drain_timeout)

    result: dict[str, Any] = {
        "mode": mode,
        "celery": {k: str(v) for k, v in conf.items()},
        **env_info,
        "n": n,
        "warmup_rounds": sizes.warmup,
        "setup_s": round(setup_s, 2),
        "agents_provisioned": len(fx.provision_ns),
        "provision": latency_summary(fx.provision_ns),
        "hand_off_drain_after_setup_s": drain_setup_s,
        "measure_s": round(measure_s, 2),
        "cpu": cpu,
        "hand_off_drain_after_rounds_s": drain_s,
        "hand_off_backlog_after_rounds": backlog_after_rounds,
        "hand_off_backlog_at_end": dispatch._pending.qsize(),
        "classes": {
            key: {
                "label": CLASSES[key][0],
                **summary(durations[key]),
                "outcomes": dict(outcomes[key]),
            }
            for key in CLASSES
        },
        "queries": queries,
        "checks": checks,
    }
    classes = result["classes"]
    result["ratios"] = {
        f"{key}/{base}": {
            q: ratio(classes[key][f"{q}_ms"], classes[base][f"{q}_ms"])
            for q in ("p50", "p95", "p99")
        }
        for key in ("cap_first", "cap_attach")
        for base in (BASELINE, "decline_mcc", "approve", "cap_stub_outbox", "cap_stub_request")
    }
    if mode == "redis":
        result["heavy"] = run_heavy(fx, sizes)
        wait_hand_off(60.0)
    return result


def run_heavy(fx: Fixtures, sizes: Sizes) -> dict[str, Any]:
    """First cap declines of agents with many traced ledger rows in their rolling day.

    Each agent is brought to its cap by one approved, traced charge through the service;
    its ledger entry is then cloned in SQL into `heavy_entries` rows spread over the last
    23 hours and 50 traces. The spend counters are left as the service wrote them (the
    decision reads the counters, so it still sees the agent exactly at its cap): the
    cloned rows only feed `ledger.selectors.top_traces`, which the approval card's
    payload runs inside the decline's transaction."""
    from django.db import connection

    from ledger.models import LedgerEntry
    from ledger.selectors import top_traces

    log(f"heavy: {sizes.heavy_agents} agents x {sizes.heavy_entries} traced ledger rows")
    t0 = time.perf_counter()
    cards = [fx.edge_card("heavy", trace_id="heavy-trace-0") for _ in range(sizes.heavy_agents)]
    qn = connection.ops.quote_name
    table = LedgerEntry._meta.db_table
    cols = [
        f.column
        for f in LedgerEntry._meta.concrete_fields
        if f.column not in ("id", "created_at", "effective_at", "trace_id", "network_txn_id")
    ]
    now = datetime.now(UTC)
    span = timedelta(hours=23, minutes=50)
    with connection.cursor() as cursor:
        for card in cards:
            entry_id = LedgerEntry.objects.filter(agent_id=card.agent_id).values_list(
                "pk", flat=True
            )[0]
            col_list = ", ".join(qn(c) for c in cols)
            cursor.execute(
                f"INSERT INTO {qn(table)} (created_at, effective_at, trace_id, {col_list}) "
                f"SELECT %s::timestamptz - g * %s::interval, %s::timestamptz - g * %s::interval, "
                f"'heavy-trace-' || (g %% %s), {col_list} "
                f"FROM {qn(table)}, generate_series(1, %s) AS g WHERE id = %s",
                [
                    now - timedelta(minutes=1),
                    span / sizes.heavy_entries,
                    now - timedelta(minutes=1),
                    span / sizes.heavy_entries,
                    HEAVY_TRACES,
                    sizes.heavy_entries - 1,
                    entry_id,
                ],
            )
        cursor.execute(f"ANALYZE {qn(table)}")
    seed_s = time.perf_counter() - t0
    wait_hand_off(60.0)

    from wallets.models import Agent

    agent = Agent.objects.get(pk=cards[0].agent_id)
    since = datetime.now(UTC) - timedelta(days=1)
    top_ns = []
    for _ in range(20):
        t1 = time.perf_counter_ns()
        traces = top_traces(agent=agent, since=since)
        top_ns.append(time.perf_counter_ns() - t1)
    # Interleaved with first cap declines of agents without history (fresh peers at the
    # edge) and plain declines of the heavy agents, in shuffled order per agent.
    peers = [fx.edge_card("heavy-peer") for _ in cards]
    wait_hand_off(60.0)
    times: dict[str, list[int]] = {"heavy": [], "peer": [], "plain": []}
    outcomes: Counter[str] = Counter()
    rng = random.Random(7)
    for card, peer in zip(cards, peers, strict=True):
        steps = [("heavy", card, None), ("peer", peer, None), ("plain", card, "0000")]
        rng.shuffle(steps)
        for kind, target, mcc in steps:
            t1 = time.perf_counter_ns()
            auth = fx.decide(target, SMALL_AMOUNT, mcc=mcc)
            times[kind].append(time.perf_counter_ns() - t1)
            outcomes[f"{kind}: {outcome_of(auth)}"] += 1
    sql, params = top_traces_query(agent, since).query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) {sql}", params)
        plan = [row[0] for row in cursor.fetchall()]
    return {
        "agents": len(cards),
        "entries_per_agent": sizes.heavy_entries,
        "traces_per_agent": HEAVY_TRACES,
        "seed_s": round(seed_s, 2),
        "first_cap_decline": summary(times["heavy"]),
        "first_cap_decline_no_history": summary(times["peer"]),
        "plain_decline_mcc": summary(times["plain"]),
        "outcomes": dict(outcomes),
        "top_traces_alone": summary(top_ns),
        "top_traces_result_rows": len(traces),
        "top_traces_plan": plan,
    }


def top_traces_query(agent: Any, since: datetime) -> Any:
    """The queryset `ledger.selectors.top_traces` runs (for EXPLAIN)."""
    from django.db.models import Sum

    from ledger.models import LedgerEntry

    return (
        LedgerEntry.objects.filter(agent=agent, effective_at__gte=since)
        .exclude(trace_id="")
        .values("trace_id", "cap_amount_currency")
        .annotate(cents=Sum("cap_cents"))
        .order_by("-cents")[:3]
    )


# --- Part 2: decline to Slack, through a real worker -------------------------------------


def run_delivery(sizes: Sizes, redis: RedisServer, fake: Any, worker_env: dict[str, str]) -> Any:
    from agentwallet.celery import app as celery_app
    from approvals.models import ApprovalRequest, OutboxKind, OutboxMessage, OutboxStatus
    from approvals.tasks import sweep_outbox_task

    if celery_app.conf.task_always_eager:
        raise RuntimeError("REDIS_URL did not reach the settings: Celery is eager")
    log_counter = quiet_slack_logger()
    fx = Fixtures("bench-approvals-delivery")
    result: dict[str, Any] = {"celery": {"broker_url": str(celery_app.conf.broker_url)}}

    log(f"delivery: {sizes.paced + sizes.burst + sizes.down} agents at the edge of their cap")
    t0 = time.perf_counter()
    paced = [fx.edge_card("paced") for _ in range(sizes.paced)]
    burst = [fx.edge_card("burst") for _ in range(sizes.burst)]
    down = [fx.edge_card("down") for _ in range(sizes.down)]
    result["setup_s"] = round(time.perf_counter() - t0, 2)
    warnings = OutboxMessage.objects.filter(kind=OutboxKind.WARNING).count()
    wait_hand_off(60.0)

    worker = CeleryWorker(worker_env)
    log("delivery: starting the Celery worker")
    t0 = time.perf_counter()
    worker.start()
    try:
        # Ready once it has delivered every warning the setup queued.
        deadline = time.monotonic() + 90
        while OutboxMessage.objects.filter(status=OutboxStatus.PENDING).exists():
            if not worker.alive() or time.monotonic() > deadline:
                raise RuntimeError("worker not delivering: " + " | ".join(worker.log_tail()))
            time.sleep(0.1)
        result["worker_ready_s"] = round(time.perf_counter() - t0, 2)
        result["setup_warnings_delivered"] = warnings

        def wait_posted(ids: set[str], timeout: float) -> dict[str, int]:
            """Arrival stamps of these approvals' cards (taken by the fake as each call
            arrived, so the polling interval does not enter the latency)."""
            deadline = time.monotonic() + timeout
            seen = -1
            posted: dict[str, int] = {}
            while True:
                if len(fake.calls) != seen:
                    seen = len(fake.calls)
                    posted = {}
                    for aid, stamp in approval_cards(fake):
                        if aid in ids:
                            posted.setdefault(aid, stamp)  # the first card, should one repeat
                if len(posted) == len(ids) or time.monotonic() > deadline:
                    return posted
                time.sleep(0.002)

        def decline(card: Any) -> tuple[str, int, int, str]:
            t1 = time.perf_counter_ns()
            auth = fx.decide(card, SMALL_AMOUNT)
            returned = time.perf_counter_ns()
            return str(auth.approval_request_id), returned, returned - t1, outcome_of(auth)

        postgres = PostgresPids(os.environ["DATABASE_URL"])
        worker_pid = worker.process.pid if worker.process else None
        quiet = wait_quiet(10.0, postgres, worker_pid)

        # Paced: one decline, then wait for its card.
        log(f"delivery: paced, {len(paced)} declines")
        meter = CpuMeter(postgres=postgres, server_pid=worker_pid)
        meter.start()
        latencies, decisions, outcomes, missing = [], [], Counter(), 0
        for card in paced:
            aid, returned, took, outcome = decline(card)
            decisions.append(took)
            outcomes[outcome] += 1
            posted = wait_posted({aid}, sizes.post_timeout_s)
            if aid in posted:
                latencies.append(posted[aid] - returned)
            else:
                missing += 1
        result["paced"] = {
            "decline_to_posted": summary(latencies),
            "decision": summary(decisions),
            "outcomes": dict(outcomes),
            "not_posted": missing,
            "cpu": {**meter.stop(), **quiet},
        }

        # Burst: all declines back to back, then wait for every card.
        log(f"delivery: burst, {len(burst)} declines")
        returned_at: dict[str, int] = {}
        decisions, outcomes = [], Counter()
        meter = CpuMeter(postgres=postgres, server_pid=worker_pid)
        meter.start()
        t_first = time.perf_counter_ns()
        for card in burst:
            aid, returned, took, outcome = decline(card)
            returned_at[aid] = returned
            decisions.append(took)
            outcomes[outcome] += 1
        posted = wait_posted(set(returned_at), sizes.post_timeout_s * 2)
        result["burst"] = {
            "decline_to_posted": summary([posted[a] - returned_at[a] for a in posted]),
            "decision": summary(decisions),
            "outcomes": dict(outcomes),
            "not_posted": len(returned_at) - len(posted),
            "first_decline_to_last_card_ms": round(
                (max(posted.values(), default=t_first) - t_first) / 1e6, 1
            ),
            "cpu": meter.stop(),
        }
        postgres.close()

        time.sleep(sizes.duplicate_grace_s)  # a duplicate would arrive by now
        result["once_each"] = once_each(fake)

        # Redis stopped during the declines, restarted, one sweep.
        log(f"delivery: Redis stopped, {len(down)} declines, restart, one sweep")
        redis.stop()
        returned_at, decisions, outcomes = {}, [], Counter()
        for card in down:
            aid, returned, took, outcome = decline(card)
            returned_at[aid] = returned
            decisions.append(took)
            outcomes[outcome] += 1
        hand_off_s = wait_hand_off(60.0)
        time.sleep(0.5)
        pending = OutboxMessage.objects.filter(
            approval_id__in=[int(a) for a in returned_at if a != "None"],
            kind=OutboxKind.APPROVAL_REQUEST,
            status=OutboxStatus.PENDING,
        ).count()
        early = len({a for a, _ in approval_cards(fake)} & set(returned_at))
        restart_s = redis.start()
        restarted = time.perf_counter_ns()
        sweep_errors = []
        sweep_deadline = time.monotonic() + 20
        while True:
            try:
                sweep_outbox_task.apply_async()
                break
            except Exception as exc:  # the pooled connection may still be the dead one
                sweep_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                if time.monotonic() > sweep_deadline:
                    break
                time.sleep(0.5)
        queued = time.perf_counter_ns()
        posted = wait_posted(set(returned_at), 60.0)
        time.sleep(sizes.duplicate_grace_s)
        result["redis_down"] = {
            "declines": len(down),
            "decision": summary(decisions),
            "outcomes": dict(outcomes),
            "hand_off_drain_s": hand_off_s,
            "pending_in_outbox_while_down": pending,
            "posted_while_down": early,
            "redis_restart_s": round(restart_s, 3),
            "sweep_queue_s": round((queued - restarted) / 1e9, 3),
            "sweep_queue_errors": sweep_errors,
            "restart_to_posted": summary([posted[a] - restarted for a in posted]),
            "decline_to_posted": summary([posted[a] - returned_at[a] for a in posted]),
            "delivered": len(posted),
            "not_posted": len(returned_at) - len(posted),
        }
        result["once_each_after_recovery"] = once_each(fake)
        result["approval_requests"] = ApprovalRequest.objects.count()
        result["outbox_by_kind_status"] = {
            f"{kind}/{status}": count
            for (kind, status), count in Counter(
                OutboxMessage.objects.values_list("kind", "status")
            ).items()
        }
        result["slack_calls"] = slack_method_counts(fake)
        result["publisher_log"] = {"counts": dict(log_counter.counts), **log_counter.sample}
        result["worker_alive_at_end"] = worker.alive()
    finally:
        result["worker_log_tail"] = worker.log_tail()
        worker.stop()
        worker.log_path.unlink(missing_ok=True)
    return result


def once_each(fake: Any) -> dict[str, Any]:
    from approvals.models import ApprovalRequest

    cards = [aid for aid, _ in approval_cards(fake)]
    requests = ApprovalRequest.objects.count()
    counts = Counter(cards)
    return {
        "approval_requests": requests,
        "chat_post_message_cards": len(cards),
        "distinct_approvals_posted": len(counts),
        "duplicates": sum(c - 1 for c in counts.values()),
        "ok": len(cards) == requests == len(counts),
    }


# --- Child ---------------------------------------------------------------------------------


def django_ready() -> dict[str, Any]:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    return {
        "migrate_s": round(time.perf_counter() - started, 2),
        "django_version": django.get_version(),
        "server_version": f"{connection.pg_version // 10000}.{connection.pg_version % 10000}",
    }


def slack_env(fake: Any) -> dict[str, str]:
    from approvals.tests.fake_slack import TOKEN

    return {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": fake.base_url,
        "SLACK_SIGNING_SECRET": "x",
        "SLACK_APPROVALS_CHANNEL": CHANNEL,
    }


def run_child(task: str, sizes: Sizes) -> dict[str, Any]:
    import psycopg

    try:
        recreate_postgres_database(os.environ["DATABASE_URL"])
    except psycopg.OperationalError as exc:
        return {"task": task, "status": "skipped", "reason": " ".join(str(exc).split())}

    redis: RedisServer | None = None
    fake: Any = None
    try:
        if task in ("redis", "closed", "delivery"):
            if task == "closed":
                port = free_port()  # bound and released: nothing listens there now
                if port_open(port):
                    raise RuntimeError(f"port {port} is not closed")
                os.environ["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            else:
                redis = RedisServer()
                redis.start()
                os.environ["REDIS_URL"] = redis.url
        else:
            os.environ.pop("REDIS_URL", None)  # eager: the embedded default
        if task in ("eager", "delivery"):
            fake = start_stamped_fake_slack()
            os.environ.update(slack_env(fake))
        else:
            os.environ["SLACK_APPROVALS_CHANNEL"] = CHANNEL
        env_info = django_ready()
        if task == "delivery":
            assert redis is not None
            worker_env = {**os.environ, "DEBUG": "1", "REDIS_URL": redis.url}
            worker_env.pop("SECRET_KEY", None)
            body = run_delivery(sizes, redis, fake, worker_env)
        else:
            counter = quiet_slack_logger()
            server_pid = redis.process.pid if redis and redis.process else None
            body = run_inprocess(task, sizes, env_info, server_pid)
            body["publisher_log"] = {"counts": dict(counter.counts), **counter.sample}
            if redis is not None:
                import redis as redis_py

                client = redis_py.Redis.from_url(redis.url)
                body["redis_queue_slack_len"] = client.llen("slack")
                client.close()
            if fake is not None:
                body["slack_calls"] = slack_method_counts(fake)
        return {"task": task, "status": "ok", **env_info, **body}
    finally:
        if fake is not None:
            fake.server.shutdown()
        if redis is not None:
            redis.stop()


# --- Parent ---------------------------------------------------------------------------------


def run_task(task: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {
        **os.environ,
        "DATABASE_URL": args.postgres_url,
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
        "PYTHONWARNINGS": "ignore:No directory at",
    }
    for key in ("REDIS_URL", "SLACK_BOT_TOKEN", "SLACK_API_URL", "SLACK_APPROVALS_CHANNEL"):
        env.pop(key, None)
    command = [sys.executable, str(Path(__file__).resolve()), "--child", task]
    command += ["--quick"] if args.quick else []
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stderr_lines: list[str] = []

    def relay() -> None:  # progress lines as they come; keep the rest for the report
        assert process.stderr is not None
        for line in process.stderr:
            stderr_lines.append(line.rstrip())
            if line.startswith("["):
                sys.stderr.write(line)
                sys.stderr.flush()

    relay_thread = threading.Thread(target=relay, daemon=True)
    relay_thread.start()
    try:
        stdout, _ = process.communicate(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the child stops its redis and worker
        try:
            process.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)
        return {"task": task, "status": "failed", "reason": f"timed out ({CHILD_TIMEOUT_S} s)"}
    relay_thread.join(timeout=5)
    result = last_json_line(stdout)
    other = [line for line in stderr_lines if line.strip() and not line.startswith("[")]
    if result is not None:
        result["child_stderr"] = {"lines": len(other), "tail": other[-10:]}
        return result
    tail = other[-8:]
    reason = f"child exited with {process.returncode}: " + " | ".join(tail)
    return {"task": task, "status": "failed", "reason": reason}


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def latency_cells(s: dict[str, Any]) -> list[str]:
    return [fmt(s.get(k)) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]


def report_inprocess(results: dict[str, dict[str, Any]], out: list[str]) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for mode, r in results.items():
        if r.get("status") != "ok":
            out.append(f"Part 1 [{mode}]: {r.get('status')} ({r.get('reason')})")
            continue
        classes = r["classes"]
        base50 = classes[BASELINE]["p50_ms"]
        appr50 = classes["approve"]["p50_ms"]
        cpu = r["cpu"]
        out.append(
            f"Part 1 [{mode}] in-process authorization_decide, n={r['n']} per class, "
            f"interleaved; broker {r['celery']['broker_url']}, "
            f"eager={r['celery']['task_always_eager']}; CPU while timing: bench "
            f"{cpu['client_cpu_pct']}%, PostgreSQL {cpu['postgres_cpu_pct']}%, other "
            f"processes {cpu['foreign_cpu_pct']}% of a core"
            + (" (WARNING: a busy machine)" if cpu["foreign_cpu_pct"] > FOREIGN_WARN_PCT else "")
        )
        rows = []
        for key, c in classes.items():
            q = r["queries"][key]
            rows.append(
                [
                    c["label"],
                    *latency_cells(c),
                    fmt(ratio(c["p50_ms"], base50)),
                    fmt(ratio(c["p50_ms"], appr50)),
                    fmt(ratio(c["p95_ms"], classes[BASELINE]["p95_ms"])),
                    f"{q['median']:g}",
                ]
            )
        header = ["class", "p50", "p95", "p99", "max ms", "p50/frozen", "p50/(a)"]
        out.append(format_rows([*header, "p95/frozen", "SQL"], rows))
        first, stub = classes["cap_first"], classes["cap_stub_outbox"]
        out.append(
            f"  outbox write alone (first cap decline vs same with outbox_add stubbed): "
            f"p50 x{fmt(ratio(first['p50_ms'], stub['p50_ms']), 3)}, "
            f"+{fmt(first['p50_ms'] - stub['p50_ms'], 3)} ms"
        )
        extra = Counter(r["queries"]["cap_first"]["statements"])
        extra.subtract(r["queries"][BASELINE]["statements"])
        added = ", ".join(f"{k} x{v}" for k, v in sorted(extra.items()) if v > 0)
        out.append(f"  statements a first cap decline adds to a plain decline: {added or '-'}")
        checks = r["checks"]
        out.append(
            f"  checks {'ok' if checks['ok'] else 'FAILED'}: {checks['cap_first_outbox_rows']} "
            f"outbox rows for {checks['cap_first_requests']} first declines; "
            f"stubbed outbox rows {checks['cap_stub_outbox_outbox_rows']}; outbox rows by "
            f"status {checks['outbox_rows_by_status']}"
        )
        pub = r.get("publisher_log", {}).get("counts", {})
        drained = r["hand_off_drain_after_rounds_s"]
        handoff = (
            f"  after-commit hand-off: drained {fmt(drained, 3)} s after the rounds"
            if drained is not None
            else f"  after-commit hand-off: {r['hand_off_backlog_after_rounds']} ids still "
            f"queued in-process after the rounds, {r['hand_off_backlog_at_end']} at the end"
        ) + f"; publisher log {pub or '{}'}"
        if "redis_queue_slack_len" in r:
            handoff += f"; tasks waiting in Redis 'slack' queue {r['redis_queue_slack_len']}"
        if "slack_calls" in r:
            handoff += f"; Slack calls (inline, eager) {r['slack_calls']}"
        out.append(handoff)
        if "heavy" in r:
            h = r["heavy"]
            out.append(
                f"  heavy agents ({h['agents']}, {h['entries_per_agent']} traced rows in the "
                f"rolling day): first cap decline p50 {fmt(h['first_cap_decline']['p50_ms'])} "
                f"ms (max {fmt(h['first_cap_decline']['max_ms'])}) vs "
                f"{fmt(h['first_cap_decline_no_history']['p50_ms'])} ms without history, plain "
                f"decline {fmt(h['plain_decline_mcc']['p50_ms'])} ms; top_traces alone p50 "
                f"{fmt(h['top_traces_alone']['p50_ms'])} ms"
            )
        out.append("")
        if mode in VERDICT_MODES:
            for key in ("cap_first", "cap_attach"):
                value = ratio(classes[key]["p50_ms"], base50)
                ok = value is not None and value < TARGET_RATIO and checks["ok"]
                verdicts.append(
                    (
                        f"[{mode}] {classes[key]['label']} p50 x{fmt(value, 3)} of a plain "
                        f"card_frozen decline (target < x{TARGET_RATIO:g})",
                        ok,
                    )
                )
    return verdicts


def report_delivery(r: dict[str, Any], out: list[str]) -> list[Verdict]:
    if r.get("status") != "ok":
        out.append(f"Part 2: {r.get('status')} ({r.get('reason')})")
        return [("part 2 ran", False)]
    out.append(
        "Part 2: decline -> chat.postMessage at the fake Slack, real Celery worker (solo), "
        f"worker ready after {fmt(r['worker_ready_s'])} s"
    )
    rows = []
    labels = (("paced", "paced"), ("burst", "burst"), ("redis_down", "Redis down"))
    for key, label in labels:
        part = r[key]
        outage = " (+ outage)" if key == "redis_down" else ""
        rows.append(
            [
                f"{label}: decline -> posted{outage}",
                str(part["decline_to_posted"]["n"]),
                *latency_cells(part["decline_to_posted"]),
                str(part["not_posted"]),
            ]
        )
        rows.append(
            [f"{label}: decision", str(part["decision"]["n"]), *latency_cells(part["decision"]), ""]
        )
    down = r["redis_down"]
    rows.append(
        [
            "Redis restart -> posted",
            str(down["restart_to_posted"]["n"]),
            *latency_cells(down["restart_to_posted"]),
            str(down["not_posted"]),
        ]
    )
    out.append(format_rows(["", "n", "p50", "p95", "p99", "max ms", "not posted"], rows))
    once, after = r["once_each"], r["once_each_after_recovery"]
    out.append(
        f"  cards posted {once['chat_post_message_cards']} for {once['approval_requests']} "
        f"approval requests, duplicates {once['duplicates']}; after recovery "
        f"{after['chat_post_message_cards']} for {after['approval_requests']}, duplicates "
        f"{after['duplicates']}"
    )
    tries = len(down["sweep_queue_errors"])
    out.append(
        f"  burst: first decline to last card {fmt(r['burst']['first_decline_to_last_card_ms'])}"
        f" ms; Redis down: {down['pending_in_outbox_while_down']} pending in the outbox, "
        f"{down['posted_while_down']} posted while down, sweep queued "
        f"{fmt(down['sweep_queue_s'], 3)} s after restart"
        + (f" ({tries} failed tries)" if tries else "")
    )
    out.append(f"  Slack calls {r['slack_calls']}; outbox {r['outbox_by_kind_status']}")
    for key in ("paced", "burst"):
        cpu = r[key]["cpu"]
        out.append(
            f"  CPU during {key}: bench {cpu['client_cpu_pct']}%, worker "
            f"{cpu['server_cpu_pct']}%, PostgreSQL {cpu['postgres_cpu_pct']}%, other processes "
            f"{cpu['foreign_cpu_pct']}% of a core"
            + (" (WARNING: a busy machine)" if cpu["foreign_cpu_pct"] > FOREIGN_WARN_PCT else "")
        )
    out.append("")
    return [
        (
            f"every approval request posted once (paced + burst: {once['chat_post_message_cards']}"
            f" cards / {once['approval_requests']} requests, {once['duplicates']} duplicates)",
            bool(once["ok"]) and r["paced"]["not_posted"] == 0 and r["burst"]["not_posted"] == 0,
        ),
        (
            f"Redis down then back: {down['delivered']}/{down['declines']} delivered after one "
            f"sweep, each once ({after['duplicates']} duplicates)",
            bool(after["ok"]) and down["not_posted"] == 0,
        ),
    ]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (smoke run)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--parts", default=",".join(PARTS), help="from: " + ", ".join(PARTS))
    parser.add_argument(
        "--modes", default=",".join(MODES), help="part 1 broker modes: " + ", ".join(MODES)
    )
    parser.add_argument("--child", choices=(*MODES, "delivery"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.part_list = [p.strip() for p in args.parts.split(",") if p.strip()]
    args.mode_list = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.part_list or set(args.part_list) - set(PARTS):
        parser.error(f"--parts takes {', '.join(PARTS)}; got {args.parts!r}")
    if set(args.mode_list) - set(MODES):
        parser.error(f"--modes takes {', '.join(MODES)}; got {args.modes!r}")
    args.sizes = QUICK if args.quick else Sizes()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:

        def stop(signum: int, frame: Any) -> None:
            raise SystemExit(f"stopped by signal {signum}")

        signal.signal(signal.SIGTERM, stop)
        print(json.dumps(run_child(args.child, args.sizes)), flush=True)
        return 0

    started = time.perf_counter()
    log(f"approvals bench on {args.postgres_url} ({'quick' if args.quick else 'full'} run)")
    inprocess: dict[str, dict[str, Any]] = {}
    if "inprocess" in args.part_list:
        for mode in args.mode_list:
            inprocess[mode] = run_task(mode, args)
    delivery = run_task("delivery", args) if "delivery" in args.part_list else None
    elapsed = time.perf_counter() - started

    out: list[str] = []
    verdicts = report_inprocess(inprocess, out) if inprocess else []
    if delivery is not None:
        verdicts += report_delivery(delivery, out)
    print("\n".join(out).rstrip())
    for text, ok in verdicts:
        print(f"Verdict: {'PASS' if ok else 'FAIL'} - {text}")
    print(f"Total run time {elapsed:.0f} s.")
    write_json(
        args.output,
        {
            "benchmark": "approvals_outbox",
            "targets": {
                "first_and_attaching_cap_decline_p50_over_plain_decline_below": TARGET_RATIO,
                "baseline": BASELINE,
                "modes_judged": list(VERDICT_MODES),
                "slack_cards_per_request": 1,
            },
            "quick": args.quick,
            "sizes": asdict(args.sizes),
            "machine": machine_info(),
            "load_average_at_end": list(os.getloadavg()),
            "elapsed_s": round(elapsed, 1),
            "inprocess": inprocess,
            "delivery": delivery,
            "verdicts": [{"verdict": v, "pass": ok} for v, ok in verdicts],
        },
    )
    print(f"Results written to {args.output}")
    failed = [r for r in [*inprocess.values(), delivery] if r and r.get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
