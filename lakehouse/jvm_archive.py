"""The driver JVM's class-data archive: written once by `make setup`, mapped by every later driver start.

A driver JVM loads about 20,000 classes (Spark, Delta, Hadoop, Parquet) from jars before its first job.
Java's class-data sharing can map them from one archive instead: this module runs a small pipeline
(a generated landing zone: a first run, a daily run, then a query) in a child process whose JVM writes the classes it
loaded to `deps.class_archive()` as it exits. Measured on 2 cores: `lakehouse sql` 9.3 s -> 7.2 s.
An archive that no longer fits (other jars, another Java) is ignored by the JVM; `make setup` rebuilds it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lakehouse import deps


def _child(workdir: Path, archive: Path) -> None:
    """Run a small pipeline and a query in this process; its JVM writes `archive` at exit."""
    from lakehouse import tables as T
    from lakehouse.config import load_settings
    from lakehouse.generate import GenerateSpec, generate, land
    from lakehouse.pipeline import Pipeline
    from lakehouse.session import build_session

    generated, landing = workdir / "generated", workdir / "landing"
    generate(generated, GenerateSpec(songs=30, users=5, days=2, events_per_day=150, seed=1))
    days = sorted(generated.glob("log_data/**/*.json"))
    settings = load_settings("local", {"source": str(landing), "warehouse": str(workdir / "warehouse")}, environ={})
    settings = dataclasses.replace(settings, spark_shuffle_partitions=2)
    spark = build_session(settings, "lakehouse-class-archive", driver_options=[f"-XX:ArchiveClassesAtExit={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"])
    # A first run (a new warehouse: the rebuild's path), then a daily one (change feeds and MERGEs).
    for files in ([*generated.glob("song_data/**/*.json"), days[0]], days[1:]):
        land(files, generated, landing)
        Pipeline(spark, settings).run("incremental")
    wh = T.Warehouse(spark, settings)
    wh.register()
    spark.sql("SELECT count(*) FROM gold.songplays").collect()
    spark.sql("SELECT * FROM gold.users VERSION AS OF 1 LIMIT 5").collect()
    jvm = spark.sparkContext._gateway.proc  # type: ignore[union-attr]
    spark.stop()
    # The JVM writes the archive as it exits, which is after this process would: close its stdin and wait.
    spark.sparkContext._gateway.shutdown()  # type: ignore[union-attr]
    jvm.stdin.close()
    jvm.wait(300)


def build(archive: Path) -> float:
    """Write `archive` (replacing it); returns the seconds it took."""
    started = time.monotonic()
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)  # a driver started with an archive cannot write a new one over it
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="lakehouse-archive-") as workdir:
        subprocess.run([sys.executable, "-m", "lakehouse.jvm_archive", "--child", workdir, str(partial)], check=True)
    if not partial.exists():
        raise RuntimeError(f"the JVM wrote no class-data archive at {partial}")
    os.replace(partial, archive)
    return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("WORKDIR", "ARCHIVE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(Path(args.child[0]), Path(args.child[1]))
        return 0
    archive = deps.class_archive()
    seconds = build(archive)
    print(f"class-data archive {archive} ({archive.stat().st_size / 1e6:.0f} MB) in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
