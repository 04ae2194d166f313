"""Generated code or interpreted flows (`spark.codegen`), A/B in one warm JVM.

    python benchmarks/codegen.py                          # 12 new days of 400 events after 3, modes alternating
    python benchmarks/codegen.py --events-per-day 20000   # the benchmark's day size

A generated landing zone (songs, users and days as given) gets its first `--base-days` days in one incremental
run, which is not measured. Then one new day lands before each of `--cycles` incremental runs in the same
SparkSession, `spark.codegen` alternating on, off, on, ... so both modes meet the same machine load and the same
state of the JIT. Prints each run's wall time and the medians per mode with their ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from lakehouse.config import load_settings
from lakehouse.generate import GenerateSpec, generate, land
from lakehouse.pipeline import Pipeline
from lakehouse.session import build_session


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-days", type=int, default=3)
    parser.add_argument("--cycles", type=int, default=12)
    parser.add_argument("--events-per-day", type=int, default=400)
    parser.add_argument("--songs", type=int, default=2000)
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-codegen-") as tmp:
        root = Path(tmp)
        pool, landing = root / "generated", root / "landing"
        generate(pool, GenerateSpec(songs=args.songs, users=args.users, days=args.base_days + args.cycles,
                                    events_per_day=args.events_per_day, seed=7))
        days = sorted((pool / "log_data").rglob("*.json"))
        land(sorted((pool / "song_data").rglob("*.json")) + days[: args.base_days], pool, landing)
        settings = load_settings("local", {"source": str(landing), "warehouse": str(root / "warehouse")})
        spark = build_session(settings, "bench-codegen")
        Pipeline(spark, settings).run("incremental")
        seconds: dict[str, list[float]] = {"on": [], "off": []}
        for i, day in enumerate(days[args.base_days:]):
            mode = ("on", "off")[i % 2]
            land([day], pool, landing)
            started = time.perf_counter()
            Pipeline(spark, dataclasses.replace(settings, spark_codegen=mode)).run("incremental")
            seconds[mode].append(time.perf_counter() - started)
            print(f"day {i + 1:2d}  spark.codegen = {mode:3s}  {seconds[mode][-1]:5.1f} s", flush=True)
        spark.stop()
    on, off = statistics.median(seconds["on"]), statistics.median(seconds["off"])
    print(f"{args.events_per_day:,} events a day: median {on:.1f} s generated (on), {off:.1f} s interpreted (off), "
          f"ratio off/on {off / on:.2f}")


if __name__ == "__main__":
    main()
