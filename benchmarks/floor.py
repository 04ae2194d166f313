"""The floor of any Spark pipeline here: read the landing JSON once with the lakehouse's explicit schemas, write it once.

For each source of the landing zone (song_data/, log_data/; from `lakehouse.record.ingest.sources()`, so the same
folders and schemas as bronze) it reads every `*.json` file with the explicit JSON schema and appends the
rows to a new, unpartitioned Delta table under OUT (one commit each). No parsing checks, quarantine,
lineage, deduplication, silver or gold: whatever a pipeline over this data does, it cannot cost less
than starting Spark, reading the files and writing them once. The session comes from the lakehouse's own
factory (`lakehouse.session.build_session`), so master, driver memory and shuffle partitions are the
lakehouse settings (conf/<env>.toml, LAKEHOUSE_* variables).

    python benchmarks/floor.py SOURCE OUT
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def run_floor(spark: SparkSession, source: str, out: str) -> None:
    """Read each landing source with its explicit schema and append it to OUT/<bronze table name> as Delta."""
    from lakehouse.record.ingest import sources

    for src in sources():
        # Song files hold one JSON object on one line, log files one per line: the line reader fits both.
        df = (spark.read.schema(src.json_schema)
              .option("recursiveFileLookup", "true")
              .option("pathGlobFilter", "*.json")
              .json(f"{source}/{src.name}"))
        df.write.format("delta").mode("append").save(f"{out}/{src.table.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="landing zone (with song_data/ and log_data/)")
    parser.add_argument("out", help="output folder for the Delta tables (should not exist yet)")
    args = parser.parse_args()

    from lakehouse.config import load_settings
    from lakehouse.session import build_session

    settings = load_settings(overrides={"source": args.source, "warehouse": args.out})
    started = time.perf_counter()
    spark = build_session(settings, app_name="sparkify-floor")
    session_s = time.perf_counter() - started
    run_floor(spark, settings.source, settings.warehouse)
    print(f"floor done in {time.perf_counter() - started:.1f}s (Spark session {session_s:.1f}s)")
    spark.stop()


if __name__ == "__main__":
    main()
