"""Benchmark: what users run, each step a fresh process timed wall-clock from the outside, at several history sizes.

For every size N (days of history) it lands N days of synthetic Sparkify data, then measures, each in a
process of its own (Python, JVM and SparkSession started from scratch, as `lakehouse run` is):
- floor: benchmarks/floor.py, the landing JSON read with the lakehouse's schemas and written once as Delta;
- peer: benchmarks/peer_etl.py, a typical data-lake ETL (reads everything, overwrites Parquet);
- full: `lakehouse run full` into a fresh warehouse (ingests the landing zone into bronze, builds silver and gold);
- new day: day N+1 landed, `lakehouse run incremental`;
- nothing new: `lakehouse run incremental` again;
- sql: `lakehouse sql "SELECT count(*) FROM gold.songplays"`;
plus the demo: `make demo`'s data, `lakehouse run incremental` on an empty warehouse. Spark jobs and commits
come from each run's `--report-json`, commits also from the Delta logs. Results go to
benchmarks/results/latest.{json,md,png}; the Markdown is also printed.

    python benchmarks/run.py                 # 10 and 30 days x 20000 events/day, 20000 songs, 2000 users
    python benchmarks/run.py --scale         # also 365 days (7.3M events)
    python benchmarks/run.py --quick         # one tiny size, no demo: a smoke run of the harness, not a benchmark
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from landing import kept_section
from measure import (
    BENCH_DIR,
    LAKEHOUSE,
    SizeResult,
    Step,
    delta_commits,
    parquet_files,
    pipeline_step,
    process_env,
    run_timed,
    warehouse_files,
)
from render import markdown, plot
from targets import HEAVY_DAYS, HEAVY_FACTOR, SCALE_DAYS, Target, evaluate

from lakehouse.config import load_settings
from lakehouse.generate import GenerateSpec, generate, local_writer, log_rel_path

log = logging.getLogger("bench")

DEFAULTS: dict[str, Any] = {"days": "10,30", "events_per_day": 20000, "songs": 20000, "users": 2000}
QUICK: dict[str, Any] = {"days": "2", "events_per_day": 500, "songs": 200, "users": 20}
DEMO_SPEC = GenerateSpec(songs=2000, users=80, days=14, events_per_day=3000)  # what `make demo` generates
SQL_QUERY = "SELECT count(*) FROM gold.songplays"


@dataclass(frozen=True)
class BenchConfig:
    """What to measure: sizes, generator spec, Spark settings for every process, where to work and write."""

    days: tuple[int, ...]
    spec: GenerateSpec
    repeat: int
    warmup: bool
    demo: bool
    quick: bool
    scale: bool
    heavy: bool
    spark_overrides: dict[str, Any]
    work_dir: Path
    results_dir: Path
    keep: bool
    max_files: int
    strict: bool

    @property
    def env(self) -> dict[str, str]:
        return process_env(self.spark_overrides)


# ---------------------------------------------------------------------------- landing data


@dataclass(frozen=True)
class Pool:
    """A generated landing zone of the largest size + 1 day; each size hard-links its files from it."""

    root: Path
    spec: GenerateSpec
    day_events: tuple[int, ...]  # log lines per day

    def day_path(self, day_index: int) -> str:
        return log_rel_path(self.spec.start + datetime.timedelta(days=day_index))


def generate_pool(root: Path, spec: GenerateSpec) -> Pool:
    """Generate `spec` under `root`, counting log lines per day file as they are written."""
    write = local_writer(root)
    lines: dict[str, int] = {}

    def counting_writer(rel_path: str, data: bytes) -> None:
        if rel_path.startswith("log_data/"):
            lines[rel_path] = data.count(b"\n")
        write(rel_path, data)

    started = time.perf_counter()
    summary = generate(root, spec, writer=counting_writer)
    log.info("generated %d song files and %d days (%d events) in %.0fs", summary.song_files, summary.log_files,
             summary.events, time.perf_counter() - started)
    pool = Pool(root, spec, ())
    return replace(pool, day_events=tuple(lines[pool.day_path(d)] for d in range(spec.days)))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def land(pool: Pool, landing: Path, days: range) -> int:
    """Put the song files (once) and the log files of `days` (0-based) into `landing`; return their events."""
    if not (landing / "song_data").exists():
        shutil.copytree(pool.root / "song_data", landing / "song_data", copy_function=_link_or_copy)
    for d in days:
        rel = pool.day_path(d)
        (landing / rel).parent.mkdir(parents=True, exist_ok=True)
        _link_or_copy(str(pool.root / rel), str(landing / rel))
    return sum(pool.day_events[d] for d in days)


# ---------------------------------------------------------------------------- measuring


def script_step(script: str, source: Path, out: Path, logs: Path, env: dict[str, str]) -> Step:
    """benchmarks/<script> SOURCE OUT in a fresh Python process."""
    seconds, _ = run_timed([sys.executable, BENCH_DIR / script, source, out], logs, env, cwd=out.parent)
    return Step(seconds=seconds)


def lakehouse_run(kind: str, landing: Path, warehouse: Path, logs: Path, env: dict[str, str]) -> Step:
    """`lakehouse run KIND` as users type it; its report and the commits the Delta logs gained."""
    report = logs.with_suffix(".report.json")
    before = delta_commits(warehouse)
    seconds, _ = run_timed([LAKEHOUSE, "run", kind, "--source", landing, "--warehouse", warehouse, "--report-json", report],
                           logs, env, cwd=warehouse.parent)
    return pipeline_step(seconds, report, before, delta_commits(warehouse))


def sql_step(warehouse: Path, logs: Path, env: dict[str, str]) -> Step:
    seconds, out = run_timed([LAKEHOUSE, "sql", SQL_QUERY, "--warehouse", warehouse, "--format", "json"], logs, env,
                             cwd=warehouse.parent)
    return Step(seconds=seconds, output=out.strip())


# The operator's metadata commands, each a fresh process (delta-rs, no JVM); `thrift status` exits 1 when no server runs.
COMMANDS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "runs": (("runs", "--format", "json"), (0,)),
    "history": (("history", "gold.songplays", "--format", "json"), (0,)),
    "thrift status": (("thrift", "status", "--port", "10999"), (0, 1)),
}


def command_steps(warehouse: Path, logs: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall seconds of each of COMMANDS and of `lakehouse dashboard` on `warehouse`."""
    seconds = {}
    for name, (args, ok) in COMMANDS.items():
        extra = ("--warehouse", warehouse) if name != "thrift status" else ()
        seconds[name], _ = run_timed([LAKEHOUSE, *args, *extra], logs / name.replace(" ", "_"), env, cwd=warehouse.parent, ok=ok)
    seconds["dashboard"], _ = run_timed([LAKEHOUSE, "dashboard", "--warehouse", warehouse, "--out", warehouse.parent / "dashboard"],
                                        logs / "dashboard", env, cwd=warehouse.parent)
    return seconds


def bench_once(config: BenchConfig, pool: Pool, days: int, base: Path) -> SizeResult:
    """Every step at one size, in order: floor, peer, full, new day, nothing new, sql."""
    landing, warehouse, logs, env = base / "landing", base / "warehouse", base / "logs", config.env
    events = land(pool, landing, range(days))
    log.info("%d days (%d events): floor", days, events)
    floor = script_step("floor.py", landing, base / "floor", logs / "floor", env)
    log.info("%d days: floor %.1fs; peer", days, floor.seconds)
    peer = script_step("peer_etl.py", landing, base / "peer", logs / "peer", env)
    peer_files = parquet_files(base / "peer")
    shutil.rmtree(base / "peer", ignore_errors=True)
    shutil.rmtree(base / "floor", ignore_errors=True)
    log.info("%d days: peer %.1fs; lakehouse run full", days, peer.seconds)
    full = lakehouse_run("full", landing, warehouse, logs / "full", env)
    new_day_events = land(pool, landing, range(days, days + 1))
    log.info("%d days: full %.1fs; day %d landed (%d events), lakehouse run incremental", days, full.seconds, days + 1, new_day_events)
    new_day = lakehouse_run("incremental", landing, warehouse, logs / "new_day", env)
    log.info("%d days: new day %.1fs; lakehouse run incremental with nothing new", days, new_day.seconds)
    nothing_new = lakehouse_run("incremental", landing, warehouse, logs / "nothing_new", env)
    log.info("%d days: nothing new %.1fs; lakehouse sql", days, nothing_new.seconds)
    sql = sql_step(warehouse, logs / "sql", env)
    log.info("%d days: sql %.1fs -> %s", days, sql.seconds, sql.output)
    commands = command_steps(warehouse, logs, env)
    log.info("%d days: %s", days, ", ".join(f"{k} {v:.1f}s" for k, v in commands.items()))
    return SizeResult(days, events, new_day_events, floor, peer, full, new_day, nothing_new, sql,
                      files=warehouse_files(warehouse), peer_files=peer_files, events_per_day=pool.spec.events_per_day,
                      heavy=pool.spec.events_per_day != config.spec.events_per_day, commands=commands)


def bench_size(config: BenchConfig, pool: Pool, days: int) -> SizeResult:
    """`config.repeat` chains at one size; of each step, the run with the median wall time."""
    runs = []
    for attempt in range(config.repeat):
        base = config.work_dir / f"{days}d-{attempt}"
        runs.append(bench_once(config, pool, days, base))
        if not config.keep:
            shutil.rmtree(base / "landing", ignore_errors=True)
            shutil.rmtree(base / "warehouse", ignore_errors=True)
    if len(runs) == 1:
        return runs[0]

    def median(key: str) -> Step:
        return sorted((r.steps()[key] for r in runs), key=lambda s: s.seconds)[(len(runs) - 1) // 2]

    commands = {name: sorted(r.commands[name] for r in runs)[(len(runs) - 1) // 2] for name in runs[0].commands}
    return replace(runs[0], floor=median("floor"), peer=median("peer"), full=median("full"), new_day=median("new_day"),
                   nothing_new=median("nothing_new"), sql=median("sql"), repeats=len(runs), commands=commands)


def bench_demo(config: BenchConfig) -> tuple[Step, int, dict[str, float]]:
    """`make demo`'s data (generation not measured), then `lakehouse run incremental` on an empty warehouse, and the
    metadata commands (dashboard included) on the warehouse it made."""
    base = config.work_dir / "demo"
    summary = generate(base / "landing", DEMO_SPEC)
    log.info("demo: %d events; lakehouse run incremental", summary.events)
    step = lakehouse_run("incremental", base / "landing", base / "warehouse", base / "logs" / "demo", config.env)
    commands = command_steps(base / "warehouse", base / "logs", config.env)
    log.info("demo: %.1fs; %s", step.seconds, ", ".join(f"{k} {v:.1f}s" for k, v in commands.items()))
    return step, summary.events, commands


def warm_up(config: BenchConfig) -> None:
    """One unmeasured floor run on a tiny landing zone: Python packages and Spark's jars into the page cache."""
    base = config.work_dir / "warmup"
    pool = generate_pool(base / "pool", GenerateSpec(songs=20, users=5, days=1, events_per_day=50))
    log.info("warm-up (not measured)")
    script_step("floor.py", pool.root, base / "floor", base / "logs" / "floor", config.env)


# ---------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark what users run: every step a fresh process, timed from the outside.")
    parser.add_argument("--days", help=f"history sizes in days, comma-separated (default {DEFAULTS['days']}; quick {QUICK['days']})")
    parser.add_argument("--scale", action="store_true",
                        help=f"also a {SCALE_DAYS}-day size (7.3M events at the default rate) and the heavy size (--heavy)")
    parser.add_argument("--heavy", action=argparse.BooleanOptionalAction, default=None,
                        help=f"also {HEAVY_DAYS} days x {HEAVY_FACTOR}x the events per day (default: with --scale)")
    parser.add_argument("--events-per-day", type=int, help=f"default {DEFAULTS['events_per_day']} (quick {QUICK['events_per_day']})")
    parser.add_argument("--songs", type=int, help=f"song files (default {DEFAULTS['songs']}; quick {QUICK['songs']})")
    parser.add_argument("--users", type=int, help=f"default {DEFAULTS['users']} (quick {QUICK['users']})")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (explicit flags still win)")
    parser.add_argument("--repeat", type=int, default=1, help="chains per size; each step's median is reported (default 1)")
    parser.add_argument("--demo", action=argparse.BooleanOptionalAction, default=None,
                        help="measure the demo run (`make demo`'s data; default: on, off with --quick)")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=None,
                        help="one unmeasured tiny floor run first (default: on, off with --quick)")
    parser.add_argument("--master", help="spark.master of every process (default: the lakehouse settings, local[2])")
    parser.add_argument("--driver-memory", help="spark.driver_memory of every process (default: the lakehouse settings, 4g)")
    parser.add_argument("--shuffle-partitions", type=int, help="spark.shuffle_partitions of every process (default: the lakehouse settings, 4)")
    parser.add_argument("--max-files", type=int, default=64, help="bound for the files-per-table target (default 64)")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work", help="scratch space (default benchmarks/.work)")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results", help="default benchmarks/results")
    parser.add_argument("--keep", action="store_true", help="keep the generated data, warehouses and process logs")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    fresh = parser.add_argument_group("freshness (benchmarks/freshness.py): a day lands every interval beside the watch mode")
    fresh.add_argument("--freshness", action="store_true", help="run the freshness benchmark instead of the sizes")
    fresh.add_argument("--minutes", type=float, default=10.0, help="how long files land (default 10)")
    fresh.add_argument("--interval", type=float, default=30.0, help="seconds between two landed files (default 30)")
    fresh.add_argument("--every", default="10s", help="the watch's --every (default 10s: a check is a listing on the driver, no Spark job)")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> BenchConfig:
    """Resolve flags (explicit > --quick > defaults) into a BenchConfig."""
    preset = QUICK if args.quick else DEFAULTS
    pick = {key: getattr(args, key) if getattr(args, key) is not None else preset[key] for key in preset}
    try:
        days = {int(d) for d in str(pick["days"]).split(",") if d.strip()}
    except ValueError:
        raise SystemExit(f"--days {pick['days']!r}: expected comma-separated whole numbers, e.g. 10,30") from None
    days |= {SCALE_DAYS} if args.scale else set()
    if not days or min(days) < 1:
        raise SystemExit("--days: every size must be at least 1 day")
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    ordered = tuple(sorted(days))
    spec = GenerateSpec(songs=pick["songs"], users=pick["users"], days=ordered[-1] + 1, events_per_day=pick["events_per_day"], seed=args.seed)
    overrides = {"spark.master": args.master, "spark.driver_memory": args.driver_memory, "spark.shuffle_partitions": args.shuffle_partitions}
    run_dir = args.work_dir.resolve() / f"{datetime.datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    return BenchConfig(days=ordered, spec=spec, repeat=args.repeat, warmup=not args.quick if args.warmup is None else args.warmup,
                       demo=not args.quick if args.demo is None else args.demo, quick=args.quick, scale=args.scale,
                       heavy=args.scale if args.heavy is None else args.heavy, spark_overrides=overrides, work_dir=run_dir,
                       results_dir=args.results_dir.resolve(), keep=args.keep, max_files=args.max_files, strict=args.strict)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return next(iter(out.splitlines()), "?")


def run(config: BenchConfig) -> tuple[list[SizeResult], Step | None, list[Target], dict[str, Any]]:
    """Generate, measure every size and the demo; return the results, the targets and run metadata."""
    load_before = _load()
    config.work_dir.mkdir(parents=True)
    # What every process resolves from the same environment (and what the Markdown header shows).
    settings = load_settings(overrides={**config.spark_overrides, "source": str(config.work_dir), "warehouse": str(config.work_dir)})
    demo: tuple[Step, int, dict[str, float]] | None = None
    try:
        if config.warmup:
            warm_up(config)
        log.info("generating %d days x %d events/day, %d songs, %d users", config.spec.days, config.spec.events_per_day,
                 config.spec.songs, config.spec.users)
        pool = generate_pool(config.work_dir / "pool", config.spec)
        results = [bench_size(config, pool, days) for days in config.days]
        if not config.keep:  # the heavy pool needs the room
            shutil.rmtree(pool.root, ignore_errors=True)
        if config.heavy:
            spec = replace(config.spec, days=HEAVY_DAYS + 1, events_per_day=HEAVY_FACTOR * config.spec.events_per_day)
            log.info("heavy size: generating %d days x %d events/day", spec.days, spec.events_per_day)
            heavy_pool = generate_pool(config.work_dir / "pool-heavy", spec)
            results.append(bench_size(config, heavy_pool, HEAVY_DAYS))
        if config.demo:
            demo = bench_demo(config)
    finally:
        if not config.keep:
            shutil.rmtree(config.work_dir, ignore_errors=True)
    meta: dict[str, Any] = {
        "finished_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": config.quick,
        "scale": config.scale,
        "repeat": config.repeat,
        "spec": {k: v for k, v in asdict(config.spec).items() if k != "days"} | {"days": list(config.days)},
        "spark": {"master": settings.spark_master, "driver_memory": settings.spark_driver_memory,
                  "shuffle_partitions": settings.spark_shuffle_partitions},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "java": _java_version(), "load_before": load_before, "load_after": _load()},
        "versions": {"spark": metadata.version("pyspark"), "delta": metadata.version("delta-spark")},
        "demo_spec": asdict(DEMO_SPEC),
        "demo_events": demo[1] if demo else None,
        "demo_commands": demo[2] if demo else {},
    }
    demo_step = demo[0] if demo else None
    return results, demo_step, evaluate(results, demo_step, config.max_files, config.scale, meta["demo_commands"]), meta


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    args = parse_args(argv)
    config = make_config(args)
    if args.freshness:
        import freshness

        return freshness.main(args, config.env, config.work_dir, config.results_dir)
    started = time.perf_counter()
    results, demo, targets, meta = run(config)
    meta["bench_seconds"] = round(time.perf_counter() - started, 1)

    config.results_dir.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "sizes": [asdict(r) | {"events_per_s": r.events_per_s, "ratios": r.ratios} for r in results],
                "demo": asdict(demo) if demo else None, "targets": [asdict(t) for t in targets]}
    _write_text(config.results_dir / "latest.json", json.dumps(document, indent=2, default=str) + "\n")
    text = markdown(results, demo, targets, meta)
    _write_text(config.results_dir / "latest.md", text + kept_section(config.results_dir))  # benchmarks/landing.py's table stays
    plotted = plot(results, config.results_dir / "latest.png", config.quick)

    print(text)
    written = ["latest.json", "latest.md"] + (["latest.png"] if plotted else [])
    print(f"wrote {', '.join(str(config.results_dir / n) for n in written)} in {meta['bench_seconds']:.0f}s")
    for t in targets:
        print(f"  [{t.status:>7}] {t.name}")
    return 1 if config.strict and any(t.status == "not met" for t in targets) else 0


if __name__ == "__main__":
    sys.exit(main())
