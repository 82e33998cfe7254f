"""What the benchmarks share: a fresh PostgreSQL database with the project migrated, loads
run by worker processes (closed loop, or at a fixed offered rate), PostgreSQL's CPU,
gunicorn and wrk, latency summaries, the machine, JSON results and tables.

The benchmarks run as scripts (`.venv/bin/python bench/<name>.py`), so this directory
is first on `sys.path` and this module imports by its bare name. `--code DIR` measures
another checkout of the project (an older commit, side by side) with the same harness.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/agentwallet_bench"
NETWORK_SECRET = "bench-network-secret"
AUTH_PATH = "/api/network/authorizations"
# How the bench's vendors appear on the network (a descriptor and a verified merchant
# id from the curated catalogue), so every charge passes the merchant lock and is
# decided on its caps.
MERCHANTS = {
    "openai": {"merchant_name": "OPENAI", "merchant_network_id": "SXONGQUGQWWJUTM"},
    "aws": {"merchant_name": "AMAZON WEB SERVICES", "merchant_network_id": "185119000762203"},
}


def common_arguments(description: str, output: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--code", type=Path, default=ROOT, help="The checkout to measure.")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / output)
    parser.add_argument("--quick", action="store_true", help="A short smoke run.")
    return parser


def django_setup(code: Path, database_url: str) -> None:
    """Django over `code`, on the bench database, as production runs it (DEBUG off)."""
    os.environ.update(
        DATABASE_URL=database_url,
        SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        DEBUG="0",
        AGENTWALLET_NETWORK_SECRET=NETWORK_SECRET,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        LOG_LEVEL="WARNING",
        # Principals' verification mail kept in memory: no mail server to wait for.
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        DJANGO_SETTINGS_MODULE="agentwallet.settings",
    )
    os.environ.pop("REDIS_URL", None)  # Celery eager, as in the embedded default
    sys.path.insert(0, str(code))
    os.chdir(code)  # Celery's Django fixup puts the working directory first on sys.path
    import django

    django.setup()


def recreate_database(url: str) -> None:
    """Drop and create the database named in `url` (never `postgres`), then migrate."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name == "postgres":
        raise SystemExit(f"Refusing to recreate database {name!r}: give a bench database.")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def principals_verified(emails: list[str]) -> None:
    """These principals as if they had followed the link mailed to them: the benches
    measure an established team's decisions, not the unverified principal's limit."""
    from django.utils import timezone

    from wallets.services import principal_get_or_create

    for email in emails:
        principal = principal_get_or_create(email=email)
        principal.email_verified_at = timezone.now()
        principal.save(update_fields=["email_verified_at"])


# Caps no load reaches: every decision is a full approval.
BIG = Decimal("900000000")


def openai_cards(names: Sequence[str]) -> list[Any]:
    """An agent of bench@example.com per name, under one policy whose caps no load
    reaches, each with the one card of that policy: OpenAI's. Returns the cards."""
    from policies.models import Vendor
    from policies.services import policy_create
    from wallets.actors import Actor
    from wallets.services import agent_provision

    policy = policy_create(
        slug="bench",
        name="bench",
        currency="USD",
        daily_cap=BIG,
        monthly_cap=BIG,
        default_vendors=list(Vendor.objects.filter(slug="openai")),
    )
    return [
        agent_provision(
            name=name, principal_email="bench@example.com", policy=policy, actor=Actor.system()
        )
        .cards[0]
        .card
        for name in names
    ]


def settle(url: str) -> None:
    """VACUUM ANALYZE and CHECKPOINT: every load part starts from the same state."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")


def postgres_cpu() -> dict[tuple[int, float], float]:
    """User + system CPU seconds of each PostgreSQL process, by (pid, start time)."""
    seen = {}
    for process in psutil.process_iter(["name", "create_time", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["name"] == "postgres" and times is not None:
            seen[(process.pid, process.info["create_time"])] = times.user + times.system
    return seen


def postgres_cpu_between(
    before: dict[tuple[int, float], float], after: dict[tuple[int, float], float]
) -> float:
    """CPU seconds PostgreSQL spent between two readings, over the processes alive at
    both: the load's backends (connected before its window, gone after it) and the
    server's own (WAL writer, checkpointer, ...)."""
    return sum(after[key] - before[key] for key in before.keys() & after.keys())


# --- Loads run by worker processes -------------------------------------------------------

# One operation: returns (seconds the lock was held or None, outcome).
Operation = Callable[[], tuple[float | None, str]]


@dataclass
class Load:
    """What one load measured, over its measured window only."""

    ops: int
    seconds: float
    postgres_cpu_s: float
    latencies: list[float] = field(repr=False)
    lock_held: list[float] = field(repr=False)
    outcomes: dict[str, int]

    def figures(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "ops": self.ops,
            "per_s": round(self.ops / self.seconds, 1),
            "postgres_cpu_s": round(self.postgres_cpu_s, 3),
            "postgres_cpu_ms_per_op": round(1000 * self.postgres_cpu_s / max(self.ops, 1), 3),
            "latency": summary(self.latencies),
            "outcomes": self.outcomes,
        }
        if self.lock_held:
            figures["lock_held"] = summary(self.lock_held)
        return figures


def run_load(
    make_operation: Callable[[int], Operation],
    *,
    workers: int,
    seconds: float,
    rate: float | None = None,
    warmup: float = 1.0,
) -> Load:
    """`workers` processes each call `make_operation(index)` once, then its operation in a
    loop: back to back (closed loop), or at `rate` per second in all (open loop: each
    sends at its scheduled time, at once when late). Only operations started in the
    measured window, after `warmup`, count; PostgreSQL's CPU is read at its edges."""
    from django.db import connections

    connections.close_all()  # the children open their own
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    # The children keep their connections (and so their backends) until PostgreSQL's CPU
    # has been read at the window's end.
    release = context.Event()
    start = time.time() + 1.5  # time for every child to set up
    window = (start + warmup, start + warmup + seconds)
    interval = None if rate is None else workers / rate
    # Open loop: the workers' schedules are spread over one interval.
    offsets = [0.0 if interval is None else interval * i / workers for i in range(workers)]
    children = [
        context.Process(
            target=_worker,
            args=(make_operation, i, start + offsets[i], window, interval, results, release),
        )
        for i in range(workers)
    ]
    for child in children:
        child.start()
    time.sleep(max(0.0, window[0] - time.time()))
    cpu_before = postgres_cpu()
    time.sleep(max(0.0, window[1] - time.time()))
    cpu_after = postgres_cpu()
    release.set()
    gathered: list[dict[str, Any]] = []
    while len(gathered) < workers:
        try:
            gathered.append(results.get(timeout=1))
        except queue.Empty:
            if any(child.exitcode not in (None, 0) for child in children):
                raise RuntimeError("a load worker failed (its traceback is above)") from None
    for child in children:
        child.join(timeout=30)
    latencies = [value for part in gathered for value in part["latencies"]]
    return Load(
        ops=len(latencies),
        seconds=seconds,
        postgres_cpu_s=postgres_cpu_between(cpu_before, cpu_after),
        latencies=latencies,
        lock_held=[value for part in gathered for value in part["lock_held"]],
        outcomes=dict(sum((Counter(part["outcomes"]) for part in gathered), Counter())),
    )


def _worker(
    make_operation: Callable[[int], Operation],
    index: int,
    start: float,
    window: tuple[float, float],
    interval: float | None,
    results: Any,
    release: Any,
) -> None:
    operation = make_operation(index)
    latencies: list[float] = []
    lock_held: list[float] = []
    outcomes: Counter[str] = Counter()
    due = start
    time.sleep(max(0.0, start - time.time()))
    while True:
        if interval is not None:
            time.sleep(max(0.0, due - time.time()))
        began_wall = time.time()
        if began_wall >= window[1]:
            break
        began = time.perf_counter()
        held, outcome = operation()
        took = time.perf_counter() - began
        if began_wall >= window[0]:
            latencies.append(took)
            if held is not None:
                lock_held.append(held)
            outcomes[outcome] += 1
        if interval is not None:
            due += interval
    results.put({"latencies": latencies, "lock_held": lock_held, "outcomes": dict(outcomes)})
    release.wait(120)


def summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/mean/max in milliseconds."""
    ms = sorted(value * 1000 for value in seconds)
    if len(ms) < 2:
        return dict.fromkeys(
            ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms"), ms[0] if ms else 0
        )
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], 3),
        "p95_ms": round(cuts[94], 3),
        "p99_ms": round(cuts[98], 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "max_ms": round(ms[-1], 3),
    }


# --- The network's signed requests, gunicorn and wrk ------------------------------------


def authorization_body(network_id: str, card_id: str, mcc: str, amount: str = "0.01") -> bytes:
    return json.dumps(
        {
            "id": network_id,
            "card_id": card_id,
            "amount": {"amount": amount, "currency": "USD"},
            "merchant": {
                "name": MERCHANTS["openai"]["merchant_name"],
                "mcc": mcc,
                "network_id": MERCHANTS["openai"]["merchant_network_id"],
                "country": "US",
            },
        },
        separators=(",", ":"),
    ).encode()


def signature(body: bytes, secret: str = NETWORK_SECRET) -> str:
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={stamp},v1={mac}"


def post(conn: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]) -> Any:
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else None


@contextmanager
def gunicorn(code: Path, *, workers: int = 3, env: dict[str, str] | None = None) -> Iterator[int]:
    """The project's WSGI application under gunicorn's sync workers; yields the port.
    `env`: environment variables to change for it (say, DATABASE_URL)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = Path(tempfile.mkstemp(prefix="bench-gunicorn-", suffix=".log")[1])
    command = [sys.executable, "-m", "gunicorn", "agentwallet.wsgi", "--chdir", str(code)]
    command += ["--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
    command += ["--log-level", "warning", "--error-logfile", str(log)]
    process = subprocess.Popen(command, cwd=code, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log.read_text()[-800:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.unlink(missing_ok=True)


def wrk(
    port: int, requests: list[bytes], *, clients: int, seconds: float, path: str = AUTH_PATH
) -> dict[str, Any]:
    """A closed-loop HTTP level with wrk on pre-signed raw requests (each sent once)."""
    if shutil.which("wrk") is None:
        raise SystemExit("The HTTP part needs wrk (apt-get install wrk).")
    with tempfile.NamedTemporaryFile(prefix="bench-wrk-", suffix=".bin", delete=False) as out:
        out.write(b"\0".join(requests))
    threads = min(2, clients)
    command = ["wrk", f"-t{threads}", f"-c{clients}", f"-d{max(1, round(seconds))}s"]
    command += ["--timeout", "30s", "-s", str(Path(__file__).with_name("_wrk.lua"))]
    command.append(f"http://127.0.0.1:{port}{path}")
    env = {**os.environ, "WRK_REQUESTS": out.name, "WRK_THREADS": str(threads)}
    cpu_before = postgres_cpu()
    finished = subprocess.run(command, capture_output=True, env=env, timeout=seconds + 120)
    cpu = postgres_cpu_between(cpu_before, postgres_cpu())
    Path(out.name).unlink(missing_ok=True)
    figures = json.loads(finished.stdout.decode().strip().splitlines()[-1])
    duration = figures["duration_us"] / 1e6
    return {
        "clients": clients,
        "requests": figures["requests"],
        "per_s": round(figures["requests"] / duration, 1),
        "latency": {
            "p50_ms": figures["p50_us"] / 1000,
            "p99_ms": figures["p99_us"] / 1000,
            "max_ms": figures["max_us"] / 1000,
        },
        "postgres_cpu_ms_per_op": round(1000 * cpu / max(figures["requests"], 1), 3),
        "outcomes": {"approved": figures["approved"], "declined": figures["declined"]},
        "errors": {k: v for k, v in figures["errors"].items() if v}
        | ({"non_200": figures["other"]} if figures["other"] else {}),
        "ran_out_of_requests": bool(figures["ran_out_of_requests"]),
    }


def raw_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST {AUTH_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"AgentWallet-Signature: {signature(body)}\r\n\r\n"
    )
    return head.encode() + body


# --- A hung database -------------------------------------------------------------------

# One request of the hung-database part: (gunicorn's port, the client's index) -> its
# answer as "<status> <reason or decision>".
HungRequest = Callable[[int, int], str]


def hung_database(
    code: Path, url: str, send: HungRequest, *, rounds: int, deadline_ms: int = 1500
) -> dict[str, Any]:
    """Gunicorn (3 workers) reaches PostgreSQL through a proxy that stops forwarding (the
    database hangs, as a stopped server or a dropped network does): how long each request
    sent meanwhile by 3 clients takes to be answered, beside the deadline; then the
    answers to the first requests after the database is back."""
    sys.path.insert(0, str(ROOT))  # the proxy of this checkout's tests
    from ledger.tests.tcp_proxy import HangingProxy

    parts = urlsplit(url)
    proxy = HangingProxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    proxied = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    workers = clients = 3
    env = {"DATABASE_URL": proxied, "AGENTWALLET_DECISION_DEADLINE_MS": str(deadline_ms)}
    took: list[float] = []
    answers: Counter[str] = Counter()

    def client(port: int, index: int, count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            answer = send(port, index)
            took.append(time.perf_counter() - started)
            answers[answer] += 1

    try:
        with gunicorn(code, workers=workers, env=env) as port:
            for index in list(range(clients)) * 4:  # every worker connected through the proxy
                client(port, index, 1)
            took.clear()
            answers.clear()
            log("hung database: the proxy stops forwarding")
            proxy.hang()
            threads = [
                threading.Thread(target=client, args=(port, index, rounds))
                for index in range(clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            hung, hung_answers = list(took), dict(answers)
            proxy.resume()
            answers.clear()
            for index in list(range(clients)) * 2:
                client(port, index, 1)
            after = dict(answers)
    finally:
        proxy.close()
    return {
        "deadline_ms": deadline_ms,
        "workers": workers,
        "clients": clients,
        "to_decline": summary(hung),
        "answers_while_hung": hung_answers,
        "answers_after": after,
    }


def hung_report(hung: dict[str, Any]) -> tuple[str, tuple[str, bool, str]]:
    """The hung-database part's line, and its verdict: every request declined
    `system_unavailable` within the deadline at p99, and approved once it is back."""
    to_decline = hung["to_decline"]
    line = (
        f"Hung database to decline ({hung['clients']} clients, {hung['workers']} workers): "
        f"p50 {to_decline['p50_ms']} ms, p99 {to_decline['p99_ms']} ms, max "
        f"{to_decline['max_ms']} ms (deadline {hung['deadline_ms']} ms); answers "
        f"{hung['answers_while_hung']}; after the database is back {hung['answers_after']}"
    )
    only_declines = set(hung["answers_while_hung"]) == {"200 system_unavailable"}
    back = set(hung["answers_after"]) == {"200 approved"}
    return line, (
        "hung database to decline p99 within the deadline; decided again after",
        to_decline["p99_ms"] < hung["deadline_ms"] and only_declines and back,
        f"{to_decline['p99_ms']} ms of {hung['deadline_ms']}",
    )


# --- Results --------------------------------------------------------------------------


def machine_info(code: Path) -> dict[str, Any]:
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=code, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit or None,
        "load_average": os.getloadavg(),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")  # never half a file
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    temporary.replace(path)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [list(header), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
