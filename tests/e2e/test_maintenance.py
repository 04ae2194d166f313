"""Daily runs add small files; `maintain` compacts them back to one per partition and keeps time travel."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from lakehouse import tables as T
from lakehouse.generate import GenerateSpec, generate
from lakehouse.pipeline import Pipeline

from .helpers import land, run

pytestmark = pytest.mark.e2e

DAYS = 3
LAYERS = ("silver", "gold")


def files_per_partition(spark, wh: T.Warehouse) -> dict[str, int]:
    """Most data files in one partition (the whole table when unpartitioned), per silver/gold table."""
    most = {}
    for table in T.ALL_TABLES:
        if table.layer not in LAYERS:
            continue
        files = spark.read.format("delta").load(wh.path(table)).inputFiles()
        per_partition: dict[str, int] = {}
        for f in files:
            partition = f.rsplit("/", 1)[0]
            per_partition[partition] = per_partition.get(partition, 0) + 1
        most[table.qualified] = max(per_partition.values(), default=0)
    return most


def test_maintain_compacts_daily_files_and_keeps_time_travel(spark, make_settings, tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    generate(generated, GenerateSpec(songs=40, users=10, days=DAYS, events_per_day=150, seed=11))
    landing = tmp_path / "landing"
    settings = make_settings(landing, tmp_path / "warehouse")
    wh = T.Warehouse(spark, settings)
    logs = sorted(generated.glob("log_data/**/*.json"))
    land(sorted(generated.glob("song_data/**/*.json")), generated, landing)

    plays_after_run: dict[int, int] = {}
    for day in logs:  # one run per day, as the daily job does
        land([day], generated, landing)
        run(spark, settings)
        plays_after_run[wh.version(T.SONGPLAYS)] = wh.read(T.SONGPLAYS).count()
    grown = files_per_partition(spark, wh)
    assert max(grown.values()) >= DAYS, grown  # each daily MERGE added files

    before_rows = {t.qualified: wh.read(t).collect() for t in T.GOLD_TABLES}
    versions_before = {t.qualified: wh.version(t) for t in T.GOLD_TABLES}

    results = Pipeline(spark, settings).maintain(retain_hours=168)

    assert {r["table"] for r in results} >= {t.qualified for t in T.GOLD_TABLES}
    after = files_per_partition(spark, wh)
    assert max(after.values()) <= 1, after  # small tables: one file per table or partition
    for table in T.GOLD_TABLES:
        # Same rows now, and every earlier version still readable within the retention.
        assertDataFrameEqual(wh.read(table), before_rows[table.qualified])
        old = spark.read.format("delta").option("versionAsOf", versions_before[table.qualified]).load(wh.path(table))
        assertDataFrameEqual(old, before_rows[table.qualified])
    for version, rows in plays_after_run.items():
        at = spark.read.format("delta").option("versionAsOf", version).load(wh.path(T.SONGPLAYS))
        assert at.count() == rows, f"gold.songplays version {version}"
    runs = wh.read(T.RUNS).where("kind = 'maintain'").collect()
    assert [r.status for r in runs] == ["succeeded"]
