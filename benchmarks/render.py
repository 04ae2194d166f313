"""The benchmark's results as Markdown (printed and written) and as a PNG plot."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from measure import SizeResult, Step
from targets import Target

log = logging.getLogger("bench")
STEP_NAMES = {"floor": "floor", "peer": "peer", "full": "full rebuild", "new_day": "new day", "nothing_new": "nothing new",
              "sql": "sql count(*)", "demo": "demo"}
PEER_EQUIVALENT = {"gold.songplays": "songplays", "gold.users": "users", "gold.songs": "songs", "gold.artists": "artists",
                   "gold.time": "time"}


def _n(value: float | int | None, fmt: str = "{:,.0f}") -> str:
    return "–" if value is None else fmt.format(value)


def _x(value: float | None) -> str:
    return _n(value, "{:.2f}×")


def _run_cell(step: Step) -> str:
    """`41.2 (312 jobs, 25 commits)`: wall seconds, Spark jobs, data commits counted in the Delta logs."""
    return f"{step.seconds:.1f} ({_n(step.spark_jobs)} jobs, {_n(step.data_commits)} commits)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(results: Sequence[SizeResult], demo: Step | None, targets: Sequence[Target], meta: dict[str, Any]) -> str:
    spec, spark, machine = meta["spec"], meta["spark"], meta["machine"]
    lines = [
        "# Benchmark" + (" — QUICK smoke run (tiny sizes, not a benchmark)" if meta["quick"] else ""),
        "",
        f"{meta['finished_at']} · {machine['cpus']} CPUs · load avg {machine['load_before']} -> {machine['load_after']} · "
        f"Spark {meta['versions']['spark']} · Delta {meta['versions']['delta']} · master {spark['master']}, driver "
        f"{spark['driver_memory']}, {spark['shuffle_partitions']} shuffle partitions · {spec['events_per_day']:,} events/day, "
        f"{spec['songs']:,} songs, {spec['users']:,} users, seed {spec['seed']} · median of {meta['repeat']} run(s) · "
        "every figure is the wall time of a fresh process (JVM start included)",
        "",
    ]
    rows = [[r.label, f"{r.events:,}", f"{r.floor.seconds:.1f}", f"{r.peer.seconds:.1f}", _run_cell(r.full),
             _run_cell(r.new_day), _run_cell(r.nothing_new), _n(r.ratios["new_over_full"], "{:.0%}"),
             _x(r.ratios["full_over_floor"]), _x(r.ratios["full_over_peer"]), _n(r.events_per_s)] for r in results]
    lines += _table(["size", "events", "floor s", "peer s", "full s (jobs, commits)", "new day s (jobs, commits)",
                     "nothing new s (jobs, commits)", "new/full", "full/floor", "full/peer", "events/s"], rows)
    lines += ["", "Seconds: wall time of the process. Jobs: Spark jobs the run started (its report). Commits: new "
                  "`_delta_log/*.json` files in bronze/silver/gold tables; creating a table is one (details below)."]
    if demo is not None:
        lines += ["", f"Demo (`make demo` data: {meta['demo_events']:,} events; `lakehouse run incremental` on an empty "
                      f"warehouse): {demo.seconds:.1f} s ({_n(demo.spark_jobs)} jobs, {_n(demo.data_commits)} commits)."]

    commands = [("demo", meta.get("demo_commands") or {})] + [(r.label, r.commands) for r in results]
    names = [n for n in ("runs", "history", "thrift status", "dashboard") if any(n in c for _, c in commands)]
    if names:
        lines += ["", "Metadata commands (wall s of a fresh process; delta-rs, no JVM; `history gold.songplays`, "
                      "`thrift status` with no server on its port):", ""]
        lines += _table(["warehouse", *names], [[where] + [_n(c.get(n), "{:.1f}") for n in names] for where, c in commands if c])

    lines += ["", "## Targets", ""]
    lines += [f"- **{t.status}** — {t.name}: {t.detail}" for t in targets]

    lines += ["", "## Every process", "",
              "run s: the run's own duration (its report's `duration_s`, after Spark started); outside s: wall − run s "
              "(interpreter, JVM and session start, stop). Commits: new `_delta_log/*.json` files, data tables "
              "(bronze/silver/gold) and ops tables (ops.runs); [report: N] when the run's own count (`details.commits`) "
              "differs: it leaves out the commits that create tables (version 0) in a new warehouse.", ""]
    named = [(r.label, key, s) for r in results for key, s in r.steps().items()]
    proc_rows = [[size, STEP_NAMES[key], f"{s.seconds:.1f}", _n(s.run_seconds, "{:.1f}"),
                  _n(None if s.run_seconds is None else s.seconds - s.run_seconds, "{:.1f}"), _n(s.spark_jobs),
                  _n(s.data_commits) + (f" [report: {s.commits_reported}]" if s.commits_reported not in (None, s.data_commits) else ""),
                  _n(s.ops_commits)]
                 for size, key, s in named + ([("demo", "demo", demo)] if demo is not None else [])]
    lines += _table(["size", "step", "wall s", "run s", "outside s", "Spark jobs", "data commits", "ops commits"], proc_rows, 2)

    lines += ["", "## Seconds per layer and flow (from the runs' reports)", ""]
    layer_rows = []
    for r in results:
        for key in ("full", "new_day", "nothing_new"):
            s = r.steps()[key]
            layers = [s.layer_seconds.get(layer) for layer in ("bronze", "silver", "gold")]
            top = sorted(s.flow_seconds.items(), key=lambda kv: -kv[1])[:3]
            layer_rows.append([r.label, STEP_NAMES[key]] + [_n(v, "{:.1f}") for v in layers]
                              + [", ".join(f"{k} {v:.1f}" for k, v in top) or "–"])
    lines += _table(["size", "run", "bronze", "silver", "gold", "slowest flows s"], layer_rows, 2)

    lines += ["", "## Data files per table after the runs (Delta log; peer: its Parquet files)", ""]
    names = sorted({t for r in results for t in r.files})
    file_rows = [[t] + [_n(r.files.get(t)) + (f" / {r.peer_files.get(PEER_EQUIVALENT[t], 0):,}" if t in PEER_EQUIVALENT else "")
                        for r in results] for t in names]
    lines += _table(["table (ours / peer)"] + [r.label for r in results], file_rows)
    return "\n".join(lines) + "\n"


def plot(results: Sequence[SizeResult], path: Path, quick: bool) -> bool:
    """Wall seconds of every step against days of history; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: skipping %s (pip install -e '.[bench]')", path.name)
        return False
    results = [r for r in results if not r.heavy]  # the plot is against history at one rate of events a day
    days = [r.days for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, style in (("full", "o-"), ("new_day", "s-"), ("nothing_new", "v-"), ("floor", "x:"), ("peer", "^--")):
        ax.plot(days, [r.steps()[key].seconds for r in results], style, label=STEP_NAMES[key])
    ax.set_xlabel("history (days)")
    ax.set_ylabel("wall time of the process (s)")
    ax.set_title("Run cost against history size" + (" (quick smoke run)" if quick else ""))
    ax.set_xscale("log" if days and max(days) > 10 * min(days) else "linear")
    ax.set_xticks(days, [str(d) for d in days])
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return True
