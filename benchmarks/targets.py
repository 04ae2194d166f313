"""The benchmark's targets: each met / not met / n/a, with the figures and by how much a miss misses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from measure import SizeResult, Step, ratio

SCALE_DAYS = 365
HEAVY_DAYS = 30  # the heavy size: 30 days of HEAVY_FACTOR times the events per day
HEAVY_FACTOR = 10
HEAVY_NEW_DAY_MAX = 2.5  # its new day over the new day of the 30-day size (cost grows with the day's data, not fixed cost)
NEW_DAY_SHARE_MAX = 0.15  # of the full rebuild, after 30 days
NEW_DAY_SECONDS_MAX = 15.0
NEW_DAY_JOBS_MAX = 30
NOTHING_NEW_SECONDS_MAX = 6.0
NOTHING_NEW_JOBS_MAX = 0
FULL_OVER_FLOOR_MAX = 1.5
SCALE_FULL_OVER_PEER_MAX = 0.5
DEMO_SECONDS_MAX = 30.0
SQL_SECONDS_MAX = 8.0
COMMAND_SECONDS_MAX = 2.0  # runs, history TABLE, thrift status
DASHBOARD_DEMO_SECONDS_MAX = 10.0
DASHBOARD_SCALE_SECONDS_MAX = 15.0
EVENTS_PER_S_MIN = 60_000  # full rebuild at the --scale size
INCREMENT_GROWTH_MAX = 1.3  # 365-day increment over the 30-day increment


@dataclass(frozen=True)
class Target:
    name: str
    status: str  # "met" | "not met" | "n/a"
    detail: str


def secs(v: float) -> str:
    return f"{v:.1f} s"


def pct(v: float) -> str:
    return f"{v:.0%}"


def times(v: float) -> str:
    return f"{v:.2f}×"


def check(what: str, value: float | None, limit: float, fmt: Callable[[float], str], at_most: bool = True) -> tuple[bool | None, str]:
    """One comparison: (met, text); met is None when the value was not measured."""
    if value is None:
        return None, f"{what}: not measured"
    ok = value <= limit if at_most else value >= limit
    text = f"{what} {fmt(value)} (" + ("must be 0" if at_most and limit == 0 else f"{'≤' if at_most else '≥'} {fmt(limit)}")
    if not ok:
        miss = ratio(value, limit) if at_most else ratio(limit, value)
        text += f"; misses by {miss:.2f}×" if miss else "; missed"
    return ok, text + ")"


def target(name: str, checks: Sequence[tuple[bool | None, str]], absent: str = "not measured") -> Target:
    """Met when every check is; not met when any fails; n/a when some could not be measured and none failed."""
    results = [ok for ok, _ in checks]
    status = "not met" if False in results else "n/a" if None in results or not checks else "met"
    return Target(name, status, "; ".join(text for _, text in checks) or absent)


def reference(results: Sequence[SizeResult], days: int) -> tuple[SizeResult, str]:
    """The size with `days` or, as a labelled stand-in, the largest size below the --scale one (never the heavy size)."""
    usual = [r for r in results if not r.heavy] or list(results)
    for r in usual:
        if r.days == days:
            return r, f"{days}d"
    pool = [r for r in usual if r.days != SCALE_DAYS] or usual
    r = max(pool, key=lambda x: x.days)
    return r, f"{r.days}d (stand-in for {days}d)"


def jobs(v: float) -> str:
    return f"{v:.0f} jobs"


def evaluate(results: Sequence[SizeResult], demo: Step | None, max_files: int, scale: bool,
             demo_commands: dict[str, float] | None = None) -> list[Target]:
    """Every target, in the order of benchmarks/README.md."""
    ref, label = reference(results, 30)
    usual = [r for r in results if not r.heavy]
    out = [target(
        f"one new day after 30 days ≤ {NEW_DAY_SHARE_MAX:.0%} of the full rebuild",
        [check(f"{label}: new day / full", ratio(ref.new_day.seconds, ref.full.seconds), NEW_DAY_SHARE_MAX, pct)],
    )]
    out.append(target(f"one new day ≤ {NEW_DAY_SECONDS_MAX:.0f} s (every size of {ref.events_per_day:,} events a day)",
                      [check(f"{r.label}:", r.new_day.seconds, NEW_DAY_SECONDS_MAX, secs) for r in usual]))
    out.append(target(
        f"nothing new ≤ {NOTHING_NEW_SECONDS_MAX:.0f} s, {NOTHING_NEW_JOBS_MAX} Spark jobs and 0 data commits (every size)",
        [c for r in results for c in (
            check(f"{r.label}:", r.nothing_new.seconds, NOTHING_NEW_SECONDS_MAX, secs),
            check(f"{r.label}:", r.nothing_new.spark_jobs, NOTHING_NEW_JOBS_MAX, jobs),
            check(f"{r.label}:", r.nothing_new.data_commits, 0, lambda v: f"{v:.0f} data commits"))],
    ))
    out.append(target(f"new day ≤ {NEW_DAY_JOBS_MAX} Spark jobs (every size)",
                      [check(f"{r.label}:", r.new_day.spark_jobs, NEW_DAY_JOBS_MAX, jobs) for r in results]))
    heavy = next((r for r in results if r.heavy), None)
    out.append(target(
        f"heavy day: new day at {HEAVY_DAYS} days × {HEAVY_FACTOR}× the events ≤ {HEAVY_NEW_DAY_MAX}× the new day of {label}",
        [check(f"{heavy.label} {heavy.new_day.seconds:.1f} s / {label} {ref.new_day.seconds:.1f} s =",
               ratio(heavy.new_day.seconds, ref.new_day.seconds), HEAVY_NEW_DAY_MAX, times)] if heavy else [],
        "run with --heavy (or --scale)"))
    out.append(target(
        f"full rebuild ≤ {FULL_OVER_FLOOR_MAX}× the floor and ≤ the peer (every size)",
        [c for r in results for c in (
            check(f"{r.label}: full/floor", r.ratios["full_over_floor"], FULL_OVER_FLOOR_MAX, times),
            check(f"{r.label}: full/peer", r.ratios["full_over_peer"], 1.0, times))],
    ))
    out.append(target(f"demo (`make demo` data, run incremental on an empty warehouse) ≤ {DEMO_SECONDS_MAX:.0f} s",
                      [check("demo:", demo.seconds, DEMO_SECONDS_MAX, secs)] if demo else [], "not measured (--no-demo, or --quick without --demo)"))
    out.append(target(f'`lakehouse sql "SELECT count(*) FROM gold.songplays"` ≤ {SQL_SECONDS_MAX:.0f} s (every size)',
                      [check(f"{r.label}:", r.sql.seconds, SQL_SECONDS_MAX, secs) for r in results]))
    named = [("demo", demo_commands or {})] + [(r.label, r.commands) for r in results]
    out.append(target(f"`lakehouse runs`, `history TABLE`, `thrift status` ≤ {COMMAND_SECONDS_MAX:.0f} s (demo and every size)",
                      [check(f"{where} {name}:", seconds, COMMAND_SECONDS_MAX, secs)
                       for where, commands in named for name, seconds in commands.items() if name != "dashboard"]))
    big = next((r for r in results if r.days == SCALE_DAYS), None) if scale else None
    out.append(target(
        f"`lakehouse dashboard` ≤ {DASHBOARD_DEMO_SECONDS_MAX:.0f} s on the demo warehouse, ≤ {DASHBOARD_SCALE_SECONDS_MAX:.0f} s at {SCALE_DAYS} days",
        ([check("demo:", demo_commands["dashboard"], DASHBOARD_DEMO_SECONDS_MAX, secs)] if demo_commands and "dashboard" in demo_commands else [])
        + ([check(f"{SCALE_DAYS}d:", big.commands["dashboard"], DASHBOARD_SCALE_SECONDS_MAX, secs)] if big and "dashboard" in big.commands else []),
        "not measured (no demo, no --scale)"))
    out.append(target(f"bounded files per table: ≤ {max_files} data files in any silver/gold table (every size)",
                      [check(f"{r.label}:", max(r.max_files("silver"), r.max_files("gold")), max_files,
                             lambda v: f"{v:.0f} files") for r in results]))
    out.append(target(f"--scale: full rebuild at {SCALE_DAYS} days ≥ {EVENTS_PER_S_MIN:,} events/s and ≤ {SCALE_FULL_OVER_PEER_MAX}× the peer",
                      [check(f"{SCALE_DAYS}d ({big.events:,} events):", big.events_per_s, EVENTS_PER_S_MIN,
                             lambda v: f"{v:,.0f} events/s", at_most=False),
                       check(f"{SCALE_DAYS}d: full/peer", big.ratios["full_over_peer"], SCALE_FULL_OVER_PEER_MAX, times)] if big else [],
                      "run with --scale"))
    out.append(target(
        f"--scale: {SCALE_DAYS}-day increment ≤ {INCREMENT_GROWTH_MAX}× the 30-day increment",
        [check(f"{SCALE_DAYS}d {big.new_day.seconds:.1f} s / {label} {ref.new_day.seconds:.1f} s =",
               ratio(big.new_day.seconds, ref.new_day.seconds), INCREMENT_GROWTH_MAX, times)] if big and big is not ref else [],
        "run with --scale (and a 30-day size)",
    ))
    return out
