"""Benchmark: full rebuild vs one new day's incremental run vs a typical peer ETL, at several history sizes.

For every size N (days of history) it lands N days of synthetic Sparkify data, then measures
- the peer baseline (benchmarks/peer_etl.py: reads everything, overwrites Parquet),
- `Pipeline.run("full")` into a fresh warehouse,
- day N+1 landed, `Pipeline.run("incremental")`,
with time per layer, data files per table and the driver JVM's peak memory, all in one SparkSession.
Results go to benchmarks/results/latest.{json,md,png}; the Markdown is also printed.

    python benchmarks/run.py                 # default sizes: 10, 30, 90 days x 20000 events/day
    python benchmarks/run.py --quick         # tiny sizes: a smoke run, not a benchmark
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse import tables as T
from lakehouse.config import Settings, load_settings
from lakehouse.generate import GenerateSpec, generate, local_writer, log_rel_path
from lakehouse.pipeline import Pipeline, RunReport
from lakehouse.session import build_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BENCH_DIR = Path(__file__).resolve().parent
log = logging.getLogger("bench")

DEFAULTS: dict[str, Any] = {"days": "10,30,90", "events_per_day": 20000, "songs": 20000, "users": 200}
QUICK: dict[str, Any] = {"days": "2,3", "events_per_day": 500, "songs": 200, "users": 20}
WARMUP_SPEC = GenerateSpec(songs=50, users=10, days=2, events_per_day=200)
MEASURED_TABLES = tuple(t for t in T.ALL_TABLES if t.layer in ("bronze", "silver", "gold"))
PEER_EQUIVALENT = {"gold.songplays": "songplays", "gold.users": "users", "gold.songs": "songs",
                   "gold.artists": "artists", "gold.time": "time"}

# Targets (from the issue).
INCREMENTAL_SHARE_MAX = 0.25
INCREMENT_GROWTH_MAX = 1.3
EVENTS_PER_S_MIN = 20_000
EVENTS_PER_S_FROM = 1_000_000


# ---------------------------------------------------------------------------- data


@dataclass(frozen=True)
class BenchConfig:
    """What to measure: sizes, generator spec, Spark overrides, where to work and write."""

    days: tuple[int, ...]
    spec: GenerateSpec
    repeat: int
    warmup: bool
    quick: bool
    spark_overrides: dict[str, Any]
    work_dir: Path
    results_dir: Path
    keep: bool
    max_files: int
    strict: bool


@dataclass
class Measure:
    """One measured run: wall seconds, seconds per layer, peak driver memory, data files per table."""

    seconds: float
    layer_seconds: dict[str, float] = field(default_factory=dict)
    peak_mb: float | None = None
    files: dict[str, int] = field(default_factory=dict)
    rows_written: dict[str, int] = field(default_factory=dict)
    files_read: int | None = None


@dataclass
class SizeResult:
    """Everything measured for one history size."""

    days: int
    events: int
    new_day_events: int
    full: Measure
    incremental: Measure
    peer: Measure
    repeats: int = 1

    @property
    def ratios(self) -> dict[str, float | None]:
        """Every figure against the peer baseline, plus incremental vs full."""
        return {
            "incremental_over_full": _ratio(self.incremental.seconds, self.full.seconds),
            "full_over_peer": _ratio(self.full.seconds, self.peer.seconds),
            "incremental_over_peer": _ratio(self.incremental.seconds, self.peer.seconds),
            "events_per_s_over_peer": _ratio(self.events_per_s(self.full), self.events_per_s(self.peer)),
            "peak_mb_over_peer": _ratio(self.peak_mb, self.peer.peak_mb),
            "max_files_gold_over_peer": _ratio(max_files(self.incremental.files, "gold"), max(self.peer.files.values(), default=0)),
            "star_files_over_peer": _ratio(sum(self.incremental.files.get(t, 0) for t in PEER_EQUIVALENT), sum(self.peer.files.values())),
        }

    @property
    def peak_mb(self) -> float | None:
        peaks = [p for p in (self.full.peak_mb, self.incremental.peak_mb) if p is not None]
        return max(peaks) if peaks else None

    def events_per_s(self, measure: Measure) -> float | None:
        return self.events / measure.seconds if measure.seconds > 0 else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratios"] = self.ratios
        data["peak_mb"] = self.peak_mb
        data["events_per_s_full"] = self.events_per_s(self.full)
        data["events_per_s_peer"] = self.events_per_s(self.peer)
        return data


@dataclass(frozen=True)
class Target:
    """One target of the issue and whether this run met it."""

    name: str
    status: str  # "met" | "not met" | "n/a"
    detail: str


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def max_files(files: dict[str, int], layer: str) -> int:
    """Most data files in any table of `layer` (e.g. "silver")."""
    return max((n for name, n in files.items() if name.startswith(f"{layer}.")), default=0)


# ---------------------------------------------------------------------------- landing data


@dataclass(frozen=True)
class Pool:
    """A generated landing zone of the largest size + 1 day; sizes are hard-linked from it."""

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


class DriverMemory:
    """Peak resident memory (VmHWM) of the driver JVM, reset before each measured run."""

    def __init__(self, spark: SparkSession) -> None:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        self._jvm = jvm
        self.pid = int(jvm.java.lang.ProcessHandle.current().pid())
        self.resettable = True

    def reset(self) -> None:
        """Collect garbage (so the heap can shrink) and reset the kernel's peak RSS of the JVM."""
        self._jvm.java.lang.System.gc()
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        except OSError:
            if self.resettable:
                log.warning("cannot reset VmHWM of pid %d: peak memory is the process's peak so far", self.pid)
            self.resettable = False

    def peak_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None


def count_files(spark: SparkSession, path: str, fmt: str) -> int:
    """Data files of the table's current version (Delta) or under the folder (Parquet)."""
    return len(spark.read.format(fmt).load(path).inputFiles())


def timed(memory: DriverMemory, step: Callable[[], RunReport | None]) -> tuple[Measure, RunReport | None]:
    """Run `step` with a fresh peak-memory mark; wall seconds and peak MB."""
    memory.reset()
    started = time.perf_counter()
    report = step()
    seconds = round(time.perf_counter() - started, 2)
    return Measure(seconds=seconds, peak_mb=memory.peak_mb()), report


def measure_pipeline(spark: SparkSession, settings: Settings, kind: str, memory: DriverMemory) -> Measure:
    """One `Pipeline.run(kind)`, then the data files of every bronze/silver/gold table."""
    measure, report = timed(memory, lambda: Pipeline(spark, settings).run(kind))
    assert report is not None
    measure.layer_seconds = dict(report.layer_seconds)
    measure.rows_written = report.rows_written()
    measure.files_read = report.totals().files
    measure.files = {t.qualified: count_files(spark, settings.table_path(t.layer, t.name), "delta") for t in MEASURED_TABLES}
    return measure


def measure_peer(spark: SparkSession, source: str, out: Path, memory: DriverMemory) -> Measure:
    """One run of the peer ETL, then the Parquet files of each of its tables."""
    from peer_etl import TABLES, run_peer

    measure, _ = timed(memory, lambda: run_peer(spark, source, out.as_uri()))
    measure.files = {name: count_files(spark, (out / name).as_uri(), "parquet") for name in TABLES}
    return measure


def bench_size(spark: SparkSession, config: BenchConfig, pool: Pool, days: int, memory: DriverMemory) -> SizeResult:
    """Peer, full and incremental at one history size, `config.repeat` times; the median run of each."""
    runs: list[SizeResult] = []
    for attempt in range(config.repeat):
        base = config.work_dir / f"{days}d-{attempt}"
        landing, warehouse, peer_out = base / "landing", base / "warehouse", base / "peer"
        events = land(pool, landing, range(days))
        settings = load_settings(overrides={**config.spark_overrides, "source": str(landing), "warehouse": str(warehouse)})

        log.info("%d days (%d events): peer baseline", days, events)
        peer = measure_peer(spark, settings.source, peer_out, memory)
        log.info("%d days: peer %.1fs; full rebuild", days, peer.seconds)
        full = measure_pipeline(spark, settings, "full", memory)
        new_day_events = land(pool, landing, range(days, days + 1))
        log.info("%d days: full %.1fs; incremental run of day %d (%d events)", days, full.seconds, days + 1, new_day_events)
        incremental = measure_pipeline(spark, settings, "incremental", memory)
        log.info("%d days: incremental %.1fs", days, incremental.seconds)
        if incremental.files_read != 1:
            log.warning("the incremental run read %s files, expected exactly the 1 new day", incremental.files_read)
        runs.append(SizeResult(days, events, new_day_events, full, incremental, peer))
        if not config.keep:
            shutil.rmtree(base, ignore_errors=True)
    return SizeResult(
        days=days,
        events=runs[0].events,
        new_day_events=runs[0].new_day_events,
        full=_median([r.full for r in runs]),
        incremental=_median([r.incremental for r in runs]),
        peer=_median([r.peer for r in runs]),
        repeats=len(runs),
    )


def _median(measures: list[Measure]) -> Measure:
    """The run with the median wall time (the lower one for an even count)."""
    ordered = sorted(measures, key=lambda m: m.seconds)
    return ordered[(len(ordered) - 1) // 2]


# ---------------------------------------------------------------------------- targets


def _size(results: Sequence[SizeResult], days: int, fallback: int) -> tuple[SizeResult, str]:
    """The size with `days`, else the one at index `fallback` as a stand-in (labelled)."""
    for r in results:
        if r.days == days:
            return r, f"{days} days"
    r = sorted(results, key=lambda x: x.days)[fallback]
    return r, f"{r.days} days (stand-in for {days}: not among the sizes)"


def evaluate_targets(results: Sequence[SizeResult], max_files_per_table: int) -> list[Target]:
    """The issue's targets, met / not met / n/a, with the figures behind each verdict."""
    targets: list[Target] = []
    mid, mid_label = _size(results, 30, -2 if len(results) > 1 else -1)
    share = _ratio(mid.incremental.seconds, mid.full.seconds)
    targets.append(Target(
        f"incremental after 30 days <= {INCREMENTAL_SHARE_MAX:.0%} of full rebuild",
        "met" if share is not None and share <= INCREMENTAL_SHARE_MAX else "not met",
        f"{mid_label}: {mid.incremental.seconds:.1f}s / {mid.full.seconds:.1f}s = {_pct(share)}",
    ))

    big, big_label = _size(results, 90, -1)
    if big.days == mid.days:
        targets.append(Target(f"90-day increment <= {INCREMENT_GROWTH_MAX}x the 30-day increment", "n/a", "needs two sizes"))
    else:
        growth = _ratio(big.incremental.seconds, mid.incremental.seconds)
        targets.append(Target(
            f"90-day increment <= {INCREMENT_GROWTH_MAX}x the 30-day increment",
            "met" if growth is not None and growth <= INCREMENT_GROWTH_MAX else "not met",
            f"{big_label} vs {mid_label}: {big.incremental.seconds:.1f}s / {mid.incremental.seconds:.1f}s = {_x(growth)}",
        ))

    slower = [r for r in results if r.full.seconds > r.peer.seconds]
    targets.append(Target(
        "full rebuild <= peer baseline",
        "not met" if slower else "met",
        ", ".join(f"{r.days}d: {r.full.seconds:.1f}s vs {r.peer.seconds:.1f}s ({_x(r.ratios['full_over_peer'])})" for r in results),
    ))

    large = [r for r in results if r.events >= EVENTS_PER_S_FROM]
    if not large:
        largest = max(results, key=lambda r: r.events)
        targets.append(Target(f">= {EVENTS_PER_S_MIN:,} events/s at 1M+ events", "n/a",
                              f"largest size has {largest.events:,} events ({_rate(largest.events_per_s(largest.full))} events/s)"))
    else:
        too_slow = [r for r in large if (r.events_per_s(r.full) or 0) < EVENTS_PER_S_MIN]
        targets.append(Target(
            f">= {EVENTS_PER_S_MIN:,} events/s at 1M+ events",
            "not met" if too_slow else "met",
            ", ".join(f"{r.days}d ({r.events:,} events): {_rate(r.events_per_s(r.full))}/s" for r in large),
        ))

    worst = {r.days: max(max_files(r.incremental.files, "silver"), max_files(r.incremental.files, "gold")) for r in results}
    targets.append(Target(
        f"bounded files per table (<= {max_files_per_table} data files in any silver/gold table)",
        "met" if max(worst.values()) <= max_files_per_table else "not met",
        "most files in one table after the incremental run: " + ", ".join(f"{d}d: {n}" for d, n in worst.items()),
    ))
    return targets


# ---------------------------------------------------------------------------- output


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _mb(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"] + ["| " + " | ".join(row) + " |" for row in rows]


def render_markdown(results: Sequence[SizeResult], targets: Sequence[Target], meta: dict[str, Any]) -> str:
    """The results as Markdown: main table, targets, files per table, seconds per layer."""
    spec = meta["spec"]
    title = "# Benchmark" + (" — QUICK smoke run (tiny sizes, not a benchmark)" if meta["quick"] else "")
    lines = [
        title,
        "",
        f"{meta['finished_at']} · {meta['machine']['cpus']} CPUs · load avg {meta['machine']['load_before']} -> "
        f"{meta['machine']['load_after']} · Spark {meta['versions']['spark']} · Delta {meta['versions']['delta']} · "
        f"master {meta['spark']['master']}, driver {meta['spark']['driver_memory']}, "
        f"{meta['spark']['shuffle_partitions']} shuffle partitions · "
        f"{spec['events_per_day']:,} events/day, {spec['songs']:,} songs, {spec['users']:,} users, seed {spec['seed']} · "
        f"median of {meta['repeat']} run(s)",
        "",
    ]
    header = ["size", "events", "full rebuild s", "incremental (1 new day) s", "incr/full", "peer s", "full/peer",
              "incr/peer", "events/s full", "events/s peer", "files/table silver max", "files/table gold max",
              "peer files/table max", "gold/peer files", "driver peak MB", "peer peak MB", "peak/peer"]
    rows = []
    for r in results:
        ratios = r.ratios
        rows.append([
            f"{r.days} days", f"{r.events:,}", f"{r.full.seconds:.1f}", f"{r.incremental.seconds:.1f}",
            _pct(ratios["incremental_over_full"]), f"{r.peer.seconds:.1f}", _x(ratios["full_over_peer"]),
            _x(ratios["incremental_over_peer"]), _rate(r.events_per_s(r.full)), _rate(r.events_per_s(r.peer)),
            str(max_files(r.incremental.files, "silver")), str(max_files(r.incremental.files, "gold")),
            str(max(r.peer.files.values(), default=0)), _x(ratios["max_files_gold_over_peer"]),
            _mb(r.peak_mb), _mb(r.peer.peak_mb), _x(ratios["peak_mb_over_peer"]),
        ])
    lines += _md_table(header, rows)

    lines += ["", "## Targets", ""]
    lines += [f"- **{t.status}** — {t.name}: {t.detail}" for t in targets]

    lines += ["", "## Data files per table (after the incremental run; peer: its Parquet output)", ""]
    file_rows = []
    for table in MEASURED_TABLES:
        name = table.qualified
        if table.layer == "bronze" or name == T.QUARANTINE.qualified:
            continue
        peer_name = PEER_EQUIVALENT.get(name)
        cells = [name]
        for r in results:
            ours = r.incremental.files.get(name, 0)
            cells.append(f"{ours} / {r.peer.files[peer_name]}" if peer_name else str(ours))
        file_rows.append(cells)
    lines += _md_table(["table (ours / peer)"] + [f"{r.days} days" for r in results], file_rows)

    lines += ["", "## Seconds per layer", ""]
    layer_rows = [
        [f"{r.days} days"]
        + [f"{m.layer_seconds.get(layer, 0):.1f}" for m in (r.full, r.incremental) for layer in ("bronze", "silver", "gold")]
        for r in results
    ]
    lines += _md_table(["size", "full bronze", "full silver", "full gold", "incr bronze", "incr silver", "incr gold"], layer_rows)
    return "\n".join(lines) + "\n"


def write_plot(results: Sequence[SizeResult], path: Path, quick: bool) -> bool:
    """Seconds of full, incremental and peer against days of history; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: skipping %s (pip install -e '.[bench]')", path.name)
        return False
    days = [r.days for r in results]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(days, [r.full.seconds for r in results], "o-", label="full rebuild")
    ax.plot(days, [r.incremental.seconds for r in results], "s-", label="incremental (1 new day)")
    ax.plot(days, [r.peer.seconds for r in results], "^--", label="peer baseline (full reload)")
    ax.set_xlabel("history (days)")
    ax.set_ylabel("wall time (s)")
    ax.set_title("Run cost against history size" + (" (quick smoke run)" if quick else ""))
    ax.set_xticks(days)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
    return True


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark full vs incremental runs against a typical peer ETL.")
    parser.add_argument("--days", help=f"history sizes in days, comma-separated (default {DEFAULTS['days']}; quick {QUICK['days']})")
    parser.add_argument("--events-per-day", type=int, help=f"default {DEFAULTS['events_per_day']} (quick {QUICK['events_per_day']})")
    parser.add_argument("--songs", type=int, help=f"song files (default {DEFAULTS['songs']}; quick {QUICK['songs']})")
    parser.add_argument("--users", type=int, help=f"default {DEFAULTS['users']} (quick {QUICK['users']})")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke run (explicit flags still win)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the median is reported (default 1)")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=None,
                        help="an unmeasured tiny run first, so measured runs find a warm JVM (default: on, off with --quick)")
    parser.add_argument("--master", help="Spark master (default: the lakehouse settings, local[2])")
    parser.add_argument("--driver-memory", help="driver memory (default: the lakehouse settings, 4g)")
    parser.add_argument("--shuffle-partitions", type=int, help="shuffle partitions (default: the lakehouse settings, 4)")
    parser.add_argument("--max-files", type=int, default=64, help="bound for the files-per-table target (default 64)")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work", help="scratch space (default benchmarks/.work)")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results", help="default benchmarks/results")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and warehouses")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is not met")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> BenchConfig:
    """Resolve flags (explicit > --quick > defaults) into a BenchConfig; argparse errors for bad values."""
    preset = QUICK if args.quick else DEFAULTS
    pick = {key: getattr(args, key) if getattr(args, key) is not None else preset[key] for key in preset}
    try:
        days = tuple(sorted({int(d) for d in str(pick["days"]).split(",") if d.strip()}))
    except ValueError:
        raise SystemExit(f"--days {pick['days']!r}: expected comma-separated whole numbers, e.g. 10,30,90") from None
    if not days or days[0] < 1:
        raise SystemExit("--days: every size must be at least 1 day")
    if args.repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    spec = GenerateSpec(songs=pick["songs"], users=pick["users"], days=days[-1] + 1,
                        events_per_day=pick["events_per_day"], seed=args.seed)
    overrides = {"spark.master": args.master, "spark.driver_memory": args.driver_memory,
                 "spark.shuffle_partitions": args.shuffle_partitions}
    run_dir = args.work_dir.resolve() / f"{datetime.datetime.now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    warmup = not args.quick if args.warmup is None else args.warmup
    return BenchConfig(days=days, spec=spec, repeat=args.repeat, warmup=warmup, quick=args.quick,
                       spark_overrides=overrides, work_dir=run_dir, results_dir=args.results_dir.resolve(),
                       keep=args.keep, max_files=args.max_files, strict=args.strict)


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def run(config: BenchConfig) -> tuple[list[SizeResult], list[Target], dict[str, Any]]:
    """Generate, warm up, measure every size; return the results, the targets and run metadata."""
    load_before = _load()
    config.work_dir.mkdir(parents=True)
    base = load_settings(overrides={**config.spark_overrides, "source": str(config.work_dir),
                                    "warehouse": str(config.work_dir / "_spark")})
    spark = build_session(base, app_name="lakehouse-bench")
    try:
        memory = DriverMemory(spark)
        if config.warmup:
            log.info("warm-up (not measured)")
            warm = generate_pool(config.work_dir / "warmup-pool", WARMUP_SPEC)
            bench_size(spark, replace(config, repeat=1), warm, 1, memory)
        log.info("generating %d days x %d events/day, %d songs", config.spec.days, config.spec.events_per_day, config.spec.songs)
        pool = generate_pool(config.work_dir / "pool", config.spec)
        results = [bench_size(spark, config, pool, days, memory) for days in config.days]
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        meta: dict[str, Any] = {
            "finished_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "quick": config.quick,
            "repeat": config.repeat,
            "spec": {k: v for k, v in asdict(config.spec).items() if k != "days"} | {"days": list(config.days)},
            "spark": {"master": base.spark_master, "driver_memory": base.spark_driver_memory,
                      "shuffle_partitions": base.spark_shuffle_partitions},
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                        "java": str(jvm.java.lang.System.getProperty("java.version")),
                        "load_before": load_before, "load_after": _load(), "peak_reset": memory.resettable},
            "versions": {"spark": spark.version, "delta": metadata.version("delta-spark")},
        }
    finally:
        spark.stop()
        if not config.keep:
            shutil.rmtree(config.work_dir, ignore_errors=True)
    return results, evaluate_targets(results, config.max_files), meta


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    config = make_config(parse_args(argv))
    started = time.perf_counter()
    results, targets, meta = run(config)
    meta["bench_seconds"] = round(time.perf_counter() - started, 1)

    config.results_dir.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "sizes": [r.to_json() for r in results], "targets": [asdict(t) for t in targets]}
    _write_text(config.results_dir / "latest.json", json.dumps(document, indent=2, default=str) + "\n")
    markdown = render_markdown(results, targets, meta)
    _write_text(config.results_dir / "latest.md", markdown)
    plotted = write_plot(results, config.results_dir / "latest.png", config.quick)

    print(markdown)
    written = ["latest.json", "latest.md"] + (["latest.png"] if plotted else [])
    print(f"wrote {', '.join(str(config.results_dir / n) for n in written)} in {meta['bench_seconds']:.0f}s")
    for t in targets:
        print(f"  [{t.status:>7}] {t.name}")
    missed = [t for t in targets if t.status == "not met"]
    return 1 if config.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
