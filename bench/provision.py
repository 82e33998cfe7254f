"""Benchmark: time to provision one agent with its default cards.

Run from the project root (SQLite and PostgreSQL in one go):

    .venv/bin/python bench/provision.py [--agents 300] [--databases sqlite,postgres]
        [--postgres-url postgres://postgres@127.0.0.1:5432/agentwallet_bench]
        [--output bench/results/provision.json]

Each database is measured in a child process of its own, on a freshly migrated
database, calling `wallets.services.agent_provision` with the "starter" policy
(6 cards per agent). Target: p50 under 50 ms on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import (
    DEFAULT_POSTGRES_URL,
    last_json_line,
    latency_summary,
    machine_info,
    recreate_postgres_database,
    write_json,
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATABASES = ("sqlite", "postgres")
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "provision.json"
DEFAULT_AGENTS = 300
MIN_AGENTS = 200  # fewer samples make p99 little more than the maximum
WARMUP = 5
PRINCIPALS = 20
TARGET_P50_MS = 50.0
CHILD_TIMEOUT_S = 600


# --- Child: one database ----------------------------------------------------------


def summarize(durations_ns: Sequence[int]) -> dict[str, float]:
    return {
        **latency_summary(durations_ns),
        # Throughput of the provisioning calls themselves, one after another.
        "agents_per_s": round(len(durations_ns) / (sum(durations_ns) / 1e9), 2),
    }


def run_child(database: str, agents: int) -> dict[str, Any]:
    if database == "postgres":
        import psycopg

        try:
            recreate_postgres_database(os.environ["DATABASE_URL"])
        except psycopg.OperationalError as exc:
            reason = " ".join(str(exc).split())
            return {"database": database, "status": "skipped", "reason": reason}

    import django

    django.setup()

    from django.core.management import call_command
    from django.db import connection, reset_queries

    from policies.models import Policy
    from wallets.actors import Actor
    from wallets.services import agent_provision

    started = time.perf_counter_ns()
    call_command("migrate", verbosity=0)
    migrate_s = (time.perf_counter_ns() - started) / 1e9

    policy = Policy.objects.get(slug="starter")
    actor = Actor.system("bench")

    def provision(name: str, index: int) -> int:
        result = agent_provision(
            name=name,
            principal_email=f"bench-principal-{index % PRINCIPALS:02d}@example.com",
            policy=policy,
            actor=actor,
        )
        return len(result.cards)

    for i in range(WARMUP):
        provision(f"bench-warmup-{i:03d}", i)

    durations_ns: list[int] = []
    query_counts: list[int] = []
    cards_per_agent: set[int] = set()
    for i in range(agents):
        reset_queries()
        start = time.perf_counter_ns()
        cards = provision(f"bench-agent-{i:05d}", i)
        durations_ns.append(time.perf_counter_ns() - start)
        query_counts.append(len(connection.queries))  # DEBUG=1 records every query
        cards_per_agent.add(cards)

    if connection.vendor == "postgresql":
        server_version = f"{connection.pg_version // 10000}.{connection.pg_version % 10000}"
    else:
        import sqlite3

        server_version = sqlite3.sqlite_version

    return {
        "database": database,
        "status": "ok",
        "vendor": connection.vendor,
        "server_version": server_version,
        "django_version": django.get_version(),
        "n": agents,
        "warmup": WARMUP,
        "principals": PRINCIPALS,
        "cards_per_agent": sorted(cards_per_agent),
        "queries_per_provision": {
            "median": statistics.median(query_counts),
            "max": max(query_counts),
        },
        "migrate_s": round(migrate_s, 2),
        **summarize(durations_ns),
    }


# --- Parent: spawn one child per database, report ------------------------------------


def database_url(database: str, postgres_url: str, tmp: Path) -> str:
    if database == "sqlite":
        return f"sqlite:///{tmp / 'bench.sqlite3'}"
    return postgres_url


def run_database(database: str, agents: int, postgres_url: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="agentwallet-bench-") as tmp:
        env = {
            **os.environ,
            "DATABASE_URL": database_url(database, postgres_url, Path(tmp)),
            "DEBUG": "1",
            "DJANGO_SETTINGS_MODULE": "agentwallet.settings",
        }
        command = [sys.executable, str(Path(__file__).resolve())]
        command += ["--child", database, "--agents", str(agents)]
        try:
            proc = subprocess.run(
                command,
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"database": database, "status": "failed", "reason": "timed out"}
    result = last_json_line(proc.stdout)
    if result is not None:
        return result
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    reason = f"child exited with {proc.returncode}: " + " | ".join(tail)
    return {"database": database, "status": "failed", "reason": reason}


def format_table(results: Sequence[dict[str, Any]]) -> str:
    header = ("database", "n", "p50", "p95", "p99", "mean", "max ms", "agents/s")
    rows = [header]
    for r in results:
        if r["status"] == "ok":
            rows.append(
                (
                    r["database"],
                    str(r["n"]),
                    *(f"{r[k]:.2f}" for k in ("p50_ms", "p95_ms", "p99_ms", "mean_ms", "max_ms")),
                    f"{r['agents_per_s']:.1f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['database']}: {r['status']} ({r.get('reason', 'no reason given')})")
    return "\n".join(lines)


def verdict(results: Sequence[dict[str, Any]]) -> str:
    target = f"target p50 < {TARGET_P50_MS:g} ms on PostgreSQL"
    postgres = next((r for r in results if r["database"] == "postgres"), None)
    if postgres is None:
        return f"Verdict: NOT MEASURED - PostgreSQL was not selected ({target})"
    if postgres["status"] != "ok":
        return f"Verdict: NOT MEASURED - PostgreSQL {postgres['status']} ({target})"
    p50 = postgres["p50_ms"]
    outcome = "PASS" if p50 < TARGET_P50_MS else "FAIL"
    return f"Verdict: {outcome} - PostgreSQL p50 {p50:.2f} ms ({target})"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=DEFAULT_AGENTS, help="agents timed per DB")
    parser.add_argument(
        "--databases",
        default=",".join(DATABASES),
        help="comma-separated, from: " + ", ".join(DATABASES),
    )
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--child", choices=DATABASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.agents < MIN_AGENTS:
        parser.error(f"--agents must be at least {MIN_AGENTS}")
    args.database_list = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown = sorted(set(args.database_list) - set(DATABASES))
    if unknown or not args.database_list:
        parser.error(f"--databases takes {', '.join(DATABASES)}; got {args.databases!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.agents)), flush=True)
        return 0

    results = []
    for database in args.database_list:
        print(f"Provisioning {args.agents} agents on {database}...", file=sys.stderr, flush=True)
        results.append(run_database(database, args.agents, args.postgres_url))

    print(format_table(results))
    print(verdict(results))
    write_json(
        args.output,
        {
            "benchmark": "agent_provision",
            "target": {"database": "postgres", "p50_ms_below": TARGET_P50_MS},
            "agents": args.agents,
            "machine": machine_info(),
            "results": results,
        },
    )
    print(f"Results written to {args.output}")
    return 1 if any(r["status"] == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
