"""Property: any split of the landing files into batches, landed in any order, gives the gold tables of
one full rebuild over all of them. Then `maintain` compacts the files the daily runs added back to one
per partition and keeps time travel."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from lakehouse import tables as T
from lakehouse.generate import GenerateSpec, generate
from lakehouse.operations import catalog
from lakehouse.pipeline import Pipeline

from .helpers import gold_tables, land, run

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("seed", [1])
def test_random_batches_equal_full_rebuild(spark, make_settings, tmp_path: Path, seed: int) -> None:
    generated = tmp_path / "generated"
    generate(generated, GenerateSpec(songs=150, users=12, days=4, events_per_day=400, seed=100 + seed))
    # Every file lands in a random one of three batches. Seed 1 lands days 1 and 3 first, day 4 next,
    # day 2 last (out of order), with songs spread over all three (songs arriving after their plays).
    rng = random.Random(seed)
    batches: list[list[Path]] = [[], [], []]
    for f in sorted(generated.rglob("*.json")):
        batches[rng.randrange(3)].append(f)

    landing = tmp_path / "landing"
    incremental = make_settings(landing, tmp_path / "incremental")
    wh = T.Warehouse(spark, incremental)
    plays_after_run: dict[int, int] = {}
    for batch in batches:
        land(batch, generated, landing)
        run(spark, incremental)
        plays_after_run[wh.version(T.SONGPLAYS)] = wh.read(T.SONGPLAYS).count()

    full = make_settings(landing, tmp_path / "full")
    run(spark, full, "full")
    expected, got = gold_tables(spark, full), gold_tables(spark, incremental)
    for name in expected:
        assertDataFrameEqual(got[name], expected[name])

    # Maintenance of the incremental warehouse: the daily MERGEs added files; `maintain` compacts them and
    # every earlier version stays readable within the retention.
    grown = files_per_partition(spark, wh)
    assert max(grown.values()) >= len(batches), grown
    versions_before = {t.qualified: wh.version(t) for t in T.GOLD_TABLES}
    results = Pipeline(spark, incremental).maintain(retain_hours=168)
    assert {r["table"] for r in results} >= {t.qualified for t in T.GOLD_TABLES}
    after = files_per_partition(spark, wh)
    assert max(after.values()) <= 1, after  # small tables: one file per table or partition
    for table in T.GOLD_TABLES:
        assertDataFrameEqual(wh.read(table), expected[table.qualified])
        old = spark.read.format("delta").option("versionAsOf", versions_before[table.qualified]).load(wh.path(table))
        assertDataFrameEqual(old, expected[table.qualified])
    for version, rows in plays_after_run.items():
        at = spark.read.format("delta").option("versionAsOf", version).load(wh.path(T.SONGPLAYS))
        assert at.count() == rows, f"gold.songplays version {version}"
    assert [r.status for r in wh.read(T.RUNS).where("kind = 'maintain'").collect()] == ["succeeded"]
    # Every file is minutes old: VACUUM (168 h) could delete none, so it was skipped. A stray file a failed
    # job left eight days ago is what it deletes, and then it runs, for that table only.
    assert not any(r["vacuumed"] for r in results), results
    stray = Path(wh.path(T.SONGPLAYS).removeprefix("file:")) / "part-00000-left-by-a-failed-job.snappy.parquet"
    stray.write_bytes(b"PAR1")
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(stray, (eight_days_ago, eight_days_ago))
    again = {r["table"]: r["vacuumed"] for r in catalog.maintain(wh, retain_hours=168)}
    assert [name for name, vacuumed in again.items() if vacuumed] == [T.SONGPLAYS.qualified]
    assert not stray.exists()


def files_per_partition(spark, wh: T.Warehouse) -> dict[str, int]:
    """Most data files in one partition (the whole table when unpartitioned), per silver/gold table."""
    most = {}
    for table in T.ALL_TABLES:
        if table.layer not in ("silver", "gold"):
            continue
        per_partition: dict[str, int] = {}
        for f in spark.read.format("delta").load(wh.path(table)).inputFiles():
            partition = f.rsplit("/", 1)[0]
            per_partition[partition] = per_partition.get(partition, 0) + 1
        most[table.qualified] = max(per_partition.values(), default=0)
    return most
