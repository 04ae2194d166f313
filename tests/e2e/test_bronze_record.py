"""Bronze is the record of what landed: schema drift kept, re-uploads read again, `full` rebuilt from bronze
after the landing zone expired, `--reingest` guarded, and a field that joins the schema filled from bronze."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType
from pyspark.testing import assertDataFrameEqual

from lakehouse import schemas
from lakehouse import tables as T
from lakehouse.errors import SourceError
from lakehouse.flows import silver
from lakehouse.generate import GenerateSpec, generate
from lakehouse.pipeline import Pipeline
from lakehouse.state import Files, StateStore

from .helpers import gold_tables, land, run, versions

pytestmark = pytest.mark.e2e
CORRECTED = "Corrected City, XX"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    generate(out, GenerateSpec(songs=60, users=10, days=4, events_per_day=300, seed=5))
    return out


def rewrite_events(path: Path, change) -> None:
    """Rewrite a log file line by line (a new upload: the modification time moves on)."""
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(change(e)) + "\n" for e in events))
    later = time.time() + 5
    os.utime(path, (later, later))


def with_app_version(event: dict) -> dict:
    return {**event, "appVersion": f"2.{event['itemInSession'] % 3}"}


def songplay_keys(*files: Path) -> set[tuple]:
    """Distinct NextSong events with a userId in the given log files, read with json (not Spark)."""
    keys = set()
    for f in files:
        for line in f.read_text().splitlines():
            e = json.loads(line) if line.strip() else None
            if e and e["page"] == "NextSong" and e["userId"]:
                keys.add((int(e["userId"]), e["sessionId"], e["itemInSession"], e["ts"]))
    return keys


def last_run_details(spark, settings) -> dict:
    runs = T.Warehouse(spark, settings).read(T.RUNS).orderBy(F.col("started_at").desc()).limit(1).collect()
    return json.loads(runs[0]["details"])


def test_drift_reuploads_expired_landing_and_guarded_reingest(spark, make_settings, generated: Path, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    logs = sorted(generated.glob("log_data/**/*.json"))
    settings = make_settings(landing, tmp_path / "warehouse")
    wh = T.Warehouse(spark, settings)
    day = {i + 1: landing / f.relative_to(generated) for i, f in enumerate(logs)}

    # 1. Drift: the app team adds appVersion to every event of day 2. The rows load; the field is kept.
    land(sorted(generated.glob("song_data/**/*.json")) + logs[:2], generated, landing)
    rewrite_events(day[2], with_app_version)
    lines_day2 = len(day[2].read_text().splitlines())
    first = run(spark, settings)
    assert first.new_fields == {"log_data": {"appVersion": lines_day2}}
    assert last_run_details(spark, settings)["new_fields"] == {"log_data": {"appVersion": lines_day2}}
    raw = wh.read(T.EVENTS_RAW)
    rescued = raw.where(F.col("_source_file").endswith(day[2].name)).select(
        "itemInSession", F.get_json_object("_rescued_data", "$.appVersion").alias("v")).collect()
    assert len(rescued) == lines_day2 and all(r["v"] == f"2.{r['itemInSession'] % 3}" for r in rescued)
    assert raw.where(~F.col("_source_file").endswith(day[2].name) & F.col("_rescued_data").isNotNull()).count() == 0
    assert wh.read(T.SONGPLAYS).count() == len(songplay_keys(day[1], day[2]))  # gold as without the field

    # 2. A corrected upload of day 2 under the same name: read again, its rows replace the old ones by key.
    rewrite_events(day[2], lambda e: {**e, "location": CORRECTED if e["location"] else e["location"]})
    second = run(spark, settings)
    assert second.reuploaded == {"log_data": [day[2].relative_to(landing).as_posix()]}
    assert second.sources["log_data"].files == 1 and second.sources["log_data"].loaded == lines_day2
    landed = wh.read(T.LANDED_FILES).where(F.col("path").endswith(day[2].name))
    assert landed.count() == 2, "bronze.landed_files keeps both versions of the file"
    assert wh.read(T.EVENTS_RAW).where(F.col("_source_file").endswith(day[2].name)).count() == 2 * lines_day2, "both uploads"
    plays_day2 = wh.read(T.SONGPLAYS).where(F.col("session_id").isin([k[1] for k in songplay_keys(day[2])]))
    assert plays_day2.where(F.col("location") != CORRECTED).count() == 0 < plays_day2.count()
    assert wh.read(T.SONGPLAYS).count() == len(songplay_keys(day[1], day[2]))
    # Day 2 is read once, not every run. The same bytes landing again (a re-sync touches day 1) are
    # recorded, not appended, and not reported as new content: no data table gets a new version.
    before = versions(spark, settings)
    later = time.time() + 10
    os.utime(day[1], (later, later))
    resynced = run(spark, settings)
    assert resynced.reuploaded == {} and resynced.sources["log_data"].files == 0
    after = versions(spark, settings)
    assert {name for name in after if after[name] != before[name]} == {"bronze.landed_files"}
    assert wh.read(T.LANDED_FILES).where(F.col("path").endswith(day[1].name)).count() == 2

    # 3. Day 3 lands and runs; the landing zone expires day 1; day 4 lands. `full` keeps day 1 (from bronze),
    #    ingests day 4 first, and its gold equals the incremental one.
    land(logs[2:3], generated, landing)
    run(spark, settings)
    # A run killed after day 3's batch was written but before it was marked complete: the next run reads the
    # same files again under the same batch number, and Delta skips every write (bronze unchanged).
    store = StateStore(Files(spark), settings.system_path)
    state = store.load()
    app_id = next(a for a in state.bronze_batches if a.endswith(f"/{T.EVENTS_RAW.name}/batches"))
    state.bronze_batches[app_id] -= 1
    store.save(state)
    before, raw_rows, landed_rows = versions(spark, settings), wh.read(T.EVENTS_RAW).count(), wh.read(T.LANDED_FILES).count()
    replayed = run(spark, settings)
    assert replayed.sources["log_data"].files == 1 and replayed.sources["log_data"].rows_in > 0
    assert versions(spark, settings) == before
    assert (wh.read(T.EVENTS_RAW).count(), wh.read(T.LANDED_FILES).count()) == (raw_rows, landed_rows)
    assert store.load().bronze_batches[app_id] == state.bronze_batches[app_id] + 1
    incremental = {name: df.collect() for name, df in gold_tables(spark, settings).items()}
    keys_1_to_4 = songplay_keys(day[1], day[2], day[3], generated / logs[3].relative_to(generated))
    day[1].unlink()
    land(logs[3:4], generated, landing)
    before = versions(spark, settings)
    full = run(spark, settings, "full")
    assert full.sources["log_data"].files == 1, "full ingests what landed since the last run first"
    after = versions(spark, settings)
    assert all(after[t.qualified] == before[t.qualified] + 1 for t in (T.EVENTS, T.USERS, T.SONGPLAYS, T.GOLD_USERS, T.TIME))
    assert wh.read(T.SONGPLAYS).count() == len(keys_1_to_4)
    day4_ts = wh.read(T.EVENTS_RAW).where(F.col("_source_file").endswith(logs[3].name)).agg(F.min("ts")).head()[0]
    for name, df in gold_tables(spark, settings).items():
        if name in ("gold.songplays", "gold.time"):
            df = df.where(F.unix_millis("start_time") < day4_ts)
        if name != "gold.users":  # levels and names move on with day 4
            assertDataFrameEqual(df, spark.createDataFrame(incremental[name], T.BY_NAME[name].schema))

    # 4. `full --reingest` stops before writing anything: day 1 would leave bronze.
    state_before, before = StateStore(Files(spark), settings.system_path).load(), versions(spark, settings)
    with pytest.raises(SourceError, match=r"would drop 1 file\(s\) \(\d[\d,]* rows\).*2018-11-01-events.json.*Nothing was written"):
        Pipeline(spark, settings).run("full", reingest=True)
    assert versions(spark, settings) == before
    assert StateStore(Files(spark), settings.system_path).load() == state_before

    # 5. With --allow-missing-source bronze is rebuilt from what is left, and the summary says what left.
    lines_day1 = len((generated / logs[0].relative_to(generated)).read_text().splitlines())
    dropped = Pipeline(spark, settings).run("full", reingest=True, allow_missing_source=True)
    assert dropped.left_bronze is not None and (dropped.left_bronze.files, dropped.left_bronze.rows) == (1, lines_day1)
    assert "left_bronze" in last_run_details(spark, settings)
    assert wh.read(T.EVENTS_RAW).where(F.col("_source_file").endswith(logs[0].name)).count() == 0
    assert wh.read(T.EVENTS_RAW).where(F.col("_source_file").endswith(day[2].name)).count() == lines_day2, "latest upload only"
    assert wh.read(T.SONGPLAYS).count() == len(keys_1_to_4 - songplay_keys(generated / logs[0].relative_to(generated)))
    assert run(spark, settings).sources["log_data"].files == 0, "an incremental run after a reingest reads nothing twice"


def test_a_field_that_joins_the_schema_is_filled_from_bronze_by_full(
    spark, make_settings, generated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = tmp_path / "landing"
    logs = sorted(generated.glob("log_data/**/*.json"))
    settings = make_settings(landing, tmp_path / "warehouse")
    land(logs[:1], generated, landing)
    rewrite_events(landing / logs[0].relative_to(generated), with_app_version)
    run(spark, settings)
    assert "app_version" not in T.Warehouse(spark, settings).read(T.EVENTS).columns

    # The change a developer makes: one line in schemas.py (EVENT_JSON), the silver column and its mapping.
    event_json = StructType([*schemas.EVENT_JSON.fields, StructField("appVersion", StringType())])
    silver_events = StructType([*schemas.SILVER_EVENTS.fields, StructField("app_version", StringType())])
    monkeypatch.setattr(schemas, "EVENT_JSON", event_json)
    monkeypatch.setattr(schemas, "SILVER_EVENTS", silver_events)
    monkeypatch.setitem(silver.EVENT_TEXT_FIELDS, "app_version", "appVersion")
    monkeypatch.setattr(T, "EVENTS_RAW", dataclasses.replace(T.EVENTS_RAW, schema=schemas.bronze_schema(event_json)))
    monkeypatch.setattr(T, "EVENTS", dataclasses.replace(T.EVENTS, schema=silver_events))

    land(logs[1:2], generated, landing)
    rewrite_events(landing / logs[1].relative_to(generated), with_app_version)
    run(spark, settings)  # the new day lands in the new column; the old rows are not touched by an incremental run
    wh = T.Warehouse(spark, settings)
    raw = wh.read(T.EVENTS_RAW)
    assert raw.where(F.col("_source_file").endswith(logs[1].name) & (F.col("appVersion").isNull() | F.col("_rescued_data").isNotNull())).count() == 0
    assert raw.where(F.col("_source_file").endswith(logs[0].name) & F.col("appVersion").isNotNull()).count() == 0

    run(spark, settings, "full")
    events = wh.read(T.EVENTS)
    expected = events.select(*silver.EVENT_KEY, F.concat(F.lit("2."), (F.col("item_in_session") % 3).cast("string")).alias("app_version"))
    assertDataFrameEqual(events.select(*silver.EVENT_KEY, "app_version"), expected)
    assert events.where(F.col("_source_file").endswith(logs[0].name)).count() > 0
