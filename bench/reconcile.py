"""The reconcile side on 1,000,000 ledger entries: the ledger export (CSV, JSON lines, and
sums per trace and vendor), the runaway sweep and a 30-day policy what-if.

    .venv/bin/python bench/reconcile.py            # the portal bench's data set (built once)
    .venv/bin/python bench/reconcile.py --quick    # its small data set, one round

It measures on the data set bench/portal.py builds and keeps (1,000 agents, 6,000 cards,
1,000,000 entries over 60 days; `--rebuild` there builds it again), on its clock. Each
export goes through GET /api/ledger/export as a signed-in superuser and is consumed to its
end: wall time, rows per second, and how far the process's RSS grew after its first tenth
and at the end (flat memory: the stream holds a block, not the rows). The runaway sweep
and the what-if are timed as the beat task and the API run them (their services), best of
three, and so is a sprint report (the whole sprint before the bench's clock, in a
transaction rolled back). Targets: an export of a million rows under 20 s with flat
memory, the sweep under 1 s, a 30-day what-if under 30 s, a sprint report under 10 s.
"""

from __future__ import annotations

import gc
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import harness
import portal
import psutil

TARGETS = {
    "export_seconds_below": 20.0,
    "export_rss_growth_after_first_tenth_mb_below": 32.0,
    "runaway_sweep_seconds_below": 1.0,
    "what_if_30_days_seconds_below": 30.0,
    "sprint_report_seconds_below": 10.0,
}
EXPORTS = {
    "csv": "/api/ledger/export?format=csv",
    "jsonl": "/api/ledger/export?format=jsonl",
    "grouped by trace, vendor (csv)": "/api/ledger/export?group_by=trace,vendor",
    "grouped by agent, day (jsonl)": "/api/ledger/export?format=jsonl&group_by=agent,day",
}


def _rss() -> int:
    return psutil.Process().memory_info().rss


def measure_export(client: Any, path: str, *, tenth: int) -> dict[str, Any]:
    gc.collect()
    start = peak = _rss()
    rows = size = sampled = 0
    at_tenth: float | None = None
    started = time.perf_counter()
    response = client.get(path)
    for block in response.streaming_content:
        size += len(block)
        rows += block.count(b"\n")
        if rows - sampled >= 10_000:
            peak, sampled = max(peak, _rss()), rows
        if at_tenth is None and rows >= tenth:
            at_tenth = (peak - start) / 2**20
    seconds = time.perf_counter() - started
    peak = max(peak, _rss())
    if "jsonl" not in path:
        rows -= 1  # the CSV's header line
    return {
        "path": path,
        "status": response.status_code,
        "rows": rows,
        "mb": round(size / 2**20, 1),
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds) if seconds else None,
        "rss_growth_at_first_tenth_mb": round(at_tenth or 0, 1),
        "rss_growth_mb": round((peak - start) / 2**20, 1),
    }


def best_of(runs: int, work: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return round(min(times), 3), result


def main() -> int:
    parser = harness.common_arguments(__doc__.splitlines()[0], "reconcile.json")
    default_url = harness.DEFAULT_POSTGRES_URL.rsplit("/", 1)[0] + f"/{portal.DEFAULT_DATABASE}"
    parser.set_defaults(postgres_url=default_url)
    args = parser.parse_args()
    output = args.output.resolve()
    sizes = portal.QUICK if args.quick else portal.FULL
    url = args.postgres_url + ("_quick" if args.quick and args.postgres_url == default_url else "")
    runs = 1 if args.quick else 3
    started = time.monotonic()
    harness.django_setup(args.code.resolve(), url)
    build = portal.ensure_data(url, sizes, rebuild=False)
    harness.settle(url)

    import time_machine

    from ledger.services.reports import sprint_report_build
    from ledger.services.runaway import runaways_sweep
    from ledger.whatif import policy_what_if
    from policies.models import Policy

    clock = datetime.fromisoformat(build["built_at"])
    results: dict[str, Any] = {"exports": {}}
    with time_machine.travel(clock, tick=True):
        harness.log("on the bench's clock from here (the log's times too)")
        client = portal.signed_in_client(portal.SUPERUSER)
        for name, path in EXPORTS.items():
            harness.log(f"export: {name}")
            results["exports"][name] = measure_export(client, path, tenth=sizes.entries // 10)
        harness.log("the runaway sweep")
        # Rolled back: the sweep flags and freezes for real, and the data set is kept.
        from django.db import transaction

        def sweep() -> int:
            with transaction.atomic():
                flagged = len(runaways_sweep(now=clock))
                transaction.set_rollback(True)
            return flagged

        seconds, flagged = best_of(runs, sweep)
        results["runaway_sweep"] = {"seconds": seconds, "flagged": flagged}
        harness.log("a 30-day what-if (half the daily cap) on the busiest policy")
        policy = Policy.objects.get(slug="bench-eng")
        draft = {"daily_cap": (policy.daily_cap.amount / 2).quantize(Decimal("0.01"))}
        seconds, answer = best_of(
            runs,
            lambda: policy_what_if(
                policy=policy, changes=draft, since=clock - timedelta(days=30), until=clock
            ),
        )
        results["what_if"] = {
            "seconds": seconds,
            "policy": policy.slug,
            "authorizations": answer.authorizations,
            "declined_actual": answer.actual.declined,
            "declined_what_if": answer.what_if.declined,
        }

        harness.log("a sprint report (the sprint before the bench's clock, whole)")
        first_day = (clock - timedelta(days=14)).date()  # a day of the sprint before

        def report() -> dict[str, Any]:
            with transaction.atomic():
                built = sprint_report_build(first_day=first_day, now=clock)
                transaction.set_rollback(True)
            return {**built.figures, "first_day": built.first_day.isoformat()}

        seconds, figures = best_of(runs, report)
        results["sprint_report"] = {
            "seconds": seconds,
            "first_day": figures["first_day"],
            "traces": {c: f["traces"] for c, f in figures["currencies"].items()},
            "trace_vendor_rows": sum(
                len(f["by_trace_vendor"]) for f in figures["currencies"].values()
            ),
        }

    exports = results["exports"]
    whole = [figures for name, figures in exports.items() if "grouped" not in name]
    verdicts = {
        "export_seconds": all(f["seconds"] < TARGETS["export_seconds_below"] for f in whole),
        "export_memory_flat": all(
            f["rss_growth_mb"] - f["rss_growth_at_first_tenth_mb"]
            < TARGETS["export_rss_growth_after_first_tenth_mb_below"]
            for f in exports.values()
        ),
        "runaway_sweep": results["runaway_sweep"]["seconds"]
        < TARGETS["runaway_sweep_seconds_below"],
        "what_if_30_days": results["what_if"]["seconds"] < TARGETS["what_if_30_days_seconds_below"],
        "sprint_report": results["sprint_report"]["seconds"]
        < TARGETS["sprint_report_seconds_below"],
    }
    print(
        harness.table(
            ["export", "rows", "MB", "s", "rows/s", "RSS +MB at 1/10", "RSS +MB at end"],
            [
                (
                    name,
                    f"{f['rows']:,}",
                    f["mb"],
                    f["seconds"],
                    f"{f['rows_per_s']:,}",
                    f["rss_growth_at_first_tenth_mb"],
                    f["rss_growth_mb"],
                )
                for name, f in exports.items()
            ],
        )
    )
    sweep_figures, what = results["runaway_sweep"], results["what_if"]
    print(f"runaway sweep: {sweep_figures['seconds']} s ({sweep_figures['flagged']} flagged)")
    print(
        f"what-if over 30 days ({what['policy']}, half its daily cap): {what['seconds']} s, "
        f"{what['authorizations']:,} authorizations, declined {what['declined_actual']:,} "
        f"in fact, {what['declined_what_if']:,} with the draft"
    )
    report_figures = results["sprint_report"]
    print(
        f"sprint report (of {report_figures['first_day']}): {report_figures['seconds']} s, "
        f"{report_figures['trace_vendor_rows']:,} trace x vendor rows"
    )
    for name, passed in verdicts.items():
        print(f"{'PASS' if passed else 'MISS'}  {name}")
    harness.write_json(
        output,
        {
            "benchmark": "reconcile",
            "targets": TARGETS,
            "quick": args.quick,
            "sizes": build.get("sizes"),
            "machine": harness.machine_info(args.code.resolve()),
            "elapsed_s": round(time.monotonic() - started, 1),
            "verdicts": verdicts,
            "result": results,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
