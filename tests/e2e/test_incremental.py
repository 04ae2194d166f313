"""The incremental promise on generated data: late songs, re-delivery, no-op reruns, full == incremental."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse import tables as T
from lakehouse.generate import GenerateSpec, generate

from .helpers import gold_tables, land, run, versions

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(out, GenerateSpec(songs=240, users=25, days=4, events_per_day=900, seed=7))
    return out


def test_incremental_batches_late_songs_redelivery_and_full_rebuild(spark, make_settings, generated: Path, tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lakehouse.pipeline")
    landing = tmp_path / "landing"
    songs = sorted(generated.glob("song_data/**/*.json"))
    logs = sorted(generated.glob("log_data/**/*.json"))
    early_songs, late_songs = songs[::2], songs[1::2]
    inc = make_settings(landing, tmp_path / "incremental")

    # Run 1: two days, half the songs. Day 3 arrives *before* day 2 to prove order does not matter.
    land(early_songs + [logs[0], logs[2]], generated, landing)
    first = run(spark, inc)
    # spark.codegen = "auto": a daily run's few rows run their flows interpreted; the session gets its settings back.
    assert "Flows run interpreted (spark.codegen = auto, 1,920 rows new in bronze)" in caplog.messages
    assert spark.conf.get("spark.sql.codegen.wholeStage") == "true"
    assert first.sources["log_data"].files == 2 and first.sources["song_data"].files == len(early_songs)
    wh = T.Warehouse(spark, inc)
    plays_1 = spark.read.format("delta").option("versionAsOf", wh.version(T.SONGPLAYS)).load(wh.path(T.SONGPLAYS))
    unmatched_before = plays_1.where("song_id IS NULL").count()

    # Run 2: the late day, the remaining songs, and a re-delivery of day 1 under another name.
    land(late_songs + [logs[1], logs[3]], generated, landing)
    copy = landing / logs[0].relative_to(generated).with_name("redelivered-copy.json")
    shutil.copy2(logs[0], copy)
    second = run(spark, inc)
    assert second.sources["log_data"].files == 3
    plays_2 = T.Warehouse(spark, inc).read(T.SONGPLAYS)
    # Late songs matched plays that had landed before them.
    early_ids = plays_1.select("songplay_id")
    rematched = plays_2.join(early_ids, "songplay_id", "left_semi").where("song_id IS NOT NULL").count()
    assert rematched > plays_1.where("song_id IS NOT NULL").count(), "late songs did not re-resolve earlier plays"
    assert unmatched_before > 0

    # No duplicates anywhere in silver or gold despite the re-delivered file.
    for table, key in [(T.EVENTS, ["user_id", "session_id", "item_in_session", "ts"]), (T.SONGPLAYS, ["songplay_id"]),
                       (T.GOLD_USERS, ["user_id"]), (T.TIME, ["start_time"]), (T.GOLD_SONGS, ["song_id"]),
                       (T.GOLD_ARTISTS, ["artist_id"]), (T.USERS, ["user_id"])]:
        df = wh.read(table)
        assert df.count() == df.select(*key).distinct().count(), f"duplicate keys in {table.qualified}"

    # Run 3: nothing new -> no table changes.
    before = versions(spark, inc)
    third = run(spark, inc)
    assert third.sources["log_data"].files == 0 and third.commits == []
    assert versions(spark, inc) == before

    # `full` on the incremental warehouse rebuilds silver and gold from bronze as new versions, keeps
    # history, leaves bronze alone (nothing new landed), and equals the sequence of incremental runs.
    # (A rebuild into a new warehouse, bronze included, equals it too: test_batches.)
    incremental = {name: df.collect() for name, df in gold_tables(spark, inc).items()}
    levels = wh.read(T.USER_LEVELS).collect()
    caplog.clear()
    run(spark, inc, "full")
    assert any(m.startswith("Flows run with generated code (spark.codegen = auto") for m in caplog.messages)
    rebuilt = gold_tables(spark, inc)
    for name, df in rebuilt.items():
        assertDataFrameEqual(df, spark.createDataFrame(incremental[name], df.schema))
    assertDataFrameEqual(wh.read(T.USER_LEVELS), spark.createDataFrame(levels, T.USER_LEVELS.schema))
    after_full = versions(spark, inc)
    assert all(after_full[n] > before[n] for n in ("gold.songplays", "silver.events", "silver.user_levels"))
    assert after_full["bronze.events_raw"] == before["bronze.events_raw"]
    old = spark.read.format("delta").option("versionAsOf", before["gold.songplays"]).load(wh.path(T.SONGPLAYS))
    assertDataFrameEqual(old, rebuilt["gold.songplays"])

    # An incremental run after a full one ingests nothing twice.
    fourth = run(spark, inc)
    assert fourth.sources["log_data"].files == 0
    assert wh.read(T.EVENTS_RAW).count() == wh.read(T.EVENTS_RAW).select("_source_file").count()
    assert wh.read(T.EVENTS_RAW).groupBy("_source_file").count().where(F.col("count") > 900).count() == 0
