"""Right to erasure on generated data: forget, stays forgotten (late file, re-delivery, --reingest), purge, the CLI."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse import erasure
from lakehouse import tables as T
from lakehouse.generate import GenerateSpec, generate
from lakehouse.operations.forget import Eraser
from lakehouse.pipeline import Pipeline

from .helpers import cli_in_process, gold_tables, land, run, versions

pytestmark = pytest.mark.e2e

NAMES = ("Erasmina", "Forgetsdottir")  # the forgotten user's names: in no other row, nowhere in a Spark or Delta text


def rename_user(files: list[Path], user: str) -> None:
    """Give `user` distinctive names in every log file, and add one line of theirs that bronze quarantines."""
    for f in files:
        lines = []
        for line in f.read_text().splitlines():
            event = json.loads(line)
            if event.get("userId") == user:
                event.update(firstName=NAMES[0], lastName=NAMES[1])
            lines.append(json.dumps(event, separators=(",", ":")))
        bad = {"userId": user, "firstName": NAMES[0], "lastName": NAMES[1], "ts": "not a number", "sessionId": 1, "itemInSession": 1}
        f.write_text("\n".join([*lines, json.dumps(bad)]) + "\n")


def rows_of(wh: T.Warehouse, ids: list[int]) -> dict[str, int]:
    return {t.qualified: wh.read(t).where(erasure.belongs_to(t, ids)).count() for t in erasure.ERASED_TABLES if t is not T.TIME}


def names_in_files(root: Path) -> list[str]:
    """Files under `root` whose bytes hold a name (log JSON, checksums, Parquet footers and uncompressed pages)."""
    return sorted(str(f.relative_to(root)) for f in root.rglob("*") if f.is_file() and any(n.encode() in f.read_bytes() for n in NAMES))


def names_in_parquet(spark, root: Path) -> list[str]:
    """Parquet files under `root` (data, change data, checkpoints) with a row whose values hold a name, read by Spark."""
    groups = collections.defaultdict(list)
    for f in root.rglob("*.parquet"):
        groups[(f.relative_to(root).parts[:2], "_delta_log" in f.parts)].append(str(f))
    found = []
    for files in groups.values():
        df = spark.read.option("mergeSchema", "true").parquet(*files)
        text = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))
        hits = df.select(F.input_file_name().alias("file"), text.alias("t")).where(F.col("t").contains(NAMES[0]) | F.col("t").contains(NAMES[1]))
        found += [r[0] for r in hits.select("file").distinct().collect()]
    return found


def names_in_versions(spark, wh: T.Warehouse) -> dict[str, list[int]]:
    """Every remaining version (VERSION AS OF) of the tables that held the user's rows, and of ops.runs, with the
    versions where a row holds a name. (The other tables' files are scanned byte by byte and by Spark too.)"""
    found: dict[str, list[int]] = {}
    for table in (*erasure.ERASED_TABLES, T.RUNS):
        if not wh.exists(table):
            continue
        for (version,) in wh.delta(table).history().select("version").collect():
            df = spark.read.format("delta").option("versionAsOf", version).load(wh.path(table))
            text = F.to_json(F.struct(*[F.col(f"`{c}`") for c in df.columns]))
            if not df.where(text.contains(NAMES[0]) | text.contains(NAMES[1])).isEmpty():
                found.setdefault(table.qualified, []).append(version)
    return found


def test_forget_stays_forgotten_and_purge_leaves_no_name(spark, make_settings, tmp_path: Path, monkeypatch) -> None:
    generated = tmp_path / "generated"
    generate(generated, GenerateSpec(songs=30, users=6, days=2, events_per_day=200, seed=5))
    logs = sorted(generated.glob("log_data/**/*.json"))
    day1 = [json.loads(line)["userId"] for line in logs[0].read_text().splitlines()]
    victim = collections.Counter(u for u in day1 if u).most_common(1)[0][0]
    rename_user(logs, victim)
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    settings = make_settings(landing, warehouse)
    where = ("--warehouse", str(warehouse))
    wh = T.Warehouse(spark, settings)

    # Day 1 into a warehouse as one made before erasure existed: names in the per-file statistics of the log.
    land(sorted(generated.glob("song_data/**/*.json")) + [logs[0]], generated, landing)
    with monkeypatch.context() as m:
        m.setattr(T.Table, "stats_columns", property(lambda self: None))
        run(spark, settings)
    uid = int(victim)
    present = rows_of(wh, [uid])
    assert all(present[t.qualified] > 0 for t in (T.EVENTS_RAW, T.QUARANTINE, T.EVENTS, T.USERS, T.SONGPLAYS, T.GOLD_USERS)), present
    before_forget = versions(spark, settings)

    # A malformed id: one line, exit 2, before Spark is asked anything.
    bad = cli_in_process("forget", "--user-id", "7x", *where)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--user-id '7x'" in bad.stderr

    # Dry run: per table what would go; nothing written.
    dry = cli_in_process("forget", "--user-id", victim, "--dry-run", *where)
    assert dry.returncode == 0, dry.stderr
    assert f"silver.events: would remove {present['silver.events']:,} rows" in dry.stderr and "nothing was written" in dry.stderr
    assert versions(spark, settings) == before_forget and not wh.exists(T.FORGOTTEN)

    # Forget the user and an id that has no rows anywhere.
    done = cli_in_process("forget", "--user-id", victim, "--user-id", "424242", *where)
    assert done.returncode == 0, done.stderr
    assert "user 424242: no rows anywhere" in done.stderr and f"bronze.quarantine: removed {present['bronze.quarantine']} rows" in done.stderr
    assert set(rows_of(wh, [uid]).values()) == {0}
    assert sorted(r[0] for r in wh.read(T.FORGOTTEN).select("user_id").collect()) == [uid, 424242]
    assert gold_tables(spark, settings)["gold.time"].join(wh.read(T.SONGPLAYS), "start_time", "left_anti").isEmpty()
    # Until --purge, time travel still reads them.
    assert wh.read(T.USERS, before_forget["silver.users"]).where(F.col("user_id") == uid).count() == 1

    # Stays forgotten: a late day and a re-delivery of day 1 under another name; then bronze rebuilt from the landing zone.
    land([logs[1]], generated, landing)
    shutil.copy2(logs[0], landing / logs[0].relative_to(generated).with_name("redelivered.json"))
    later = run(spark, settings)
    assert later.status == "succeeded" and later.sources["log_data"].files == 2
    victim_lines = sum(1 for f in (logs[0], logs[1]) for line in f.read_text().splitlines()
                       if line.strip() and str(json.loads(line)["userId"]).strip() == victim)
    assert later.sources["log_data"].forgotten == victim_lines > 0  # dropped, and said so
    assert set(rows_of(wh, [uid]).values()) == {0}
    incremental_gold = {name: df.collect() for name, df in gold_tables(spark, settings).items()}
    Pipeline(spark, settings).run("full", reingest=True)
    assert set(rows_of(wh, [uid]).values()) == {0}
    for name, df in gold_tables(spark, settings).items():  # incremental after forget == rebuild
        assertDataFrameEqual(df, spark.createDataFrame(incremental_gold[name], df.schema))

    # The run log: an erasure run, counts per table, no names.
    runs = cli_in_process("runs", "--format", "json", *where)
    forget_runs = [json.loads(line) for line in runs.stdout.splitlines() if json.loads(line)["kind"] == "forget"]
    assert len(forget_runs) == 1 and json.loads(forget_runs[0]["rows_written"])["silver.events"] == -present["silver.events"]
    assert not any(n in runs.stdout for n in NAMES)

    # Purge: old versions, change data and the log's statistics go; afterwards no name anywhere in the warehouse.
    assert names_in_files(warehouse), "the scan should see the names in the log statistics before the purge"
    purged = cli_in_process("forget", "--user-id", victim, "--purge", *where)
    assert purged.returncode == 0, purged.stderr
    assert "cost: time travel before these versions is gone" in purged.stderr
    assert names_in_files(warehouse) == []
    assert names_in_parquet(spark, warehouse) == []
    assert names_in_versions(spark, wh) == {}

    # The daily run still works after the purge and adds nothing of theirs.
    after = run(spark, settings)
    assert after.status == "succeeded" and set(rows_of(wh, [uid]).values()) == {0}


def test_forget_on_the_real_data_equals_a_rebuild_without_the_user(spark, make_settings, real_warehouse, tmp_path: Path) -> None:
    built = real_warehouse("small")
    root = built.root
    events = [json.loads(line) for f in sorted(root.glob("log_data/**/*.json")) for line in f.read_text().splitlines() if line.strip()]
    plays = collections.Counter(e["userId"] for e in events if e["page"] == "NextSong" and e["userId"])
    user = plays.most_common(1)[0][0]
    # The same landing zone without the user's lines: what a rebuild would have seen had they never been there.
    without = tmp_path / "without"
    shutil.copytree(root / "song_data", without / "song_data")
    for f in root.glob("log_data/**/*.json"):
        kept = [line for line in f.read_text().splitlines() if line.strip() and json.loads(line)["userId"] != user]
        (without / f.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        (without / f.relative_to(root)).write_text("\n".join(kept) + "\n")

    forgotten = built.copy(tmp_path / "forgotten")
    result = Eraser(spark, forgotten).run([int(user)])
    rebuilt = make_settings(without, tmp_path / "rebuilt")
    run(spark, rebuilt)

    assert result.without_rows == [] and result.rows["gold.songplays"] == plays[user] and result.rows["gold.users"] == 1
    for name, df in gold_tables(spark, rebuilt).items():
        assertDataFrameEqual(gold_tables(spark, forgotten)[name], df)
    lineage = ("_source_file", "_source_modified_at")  # the two landing zones have other paths
    for table in (T.EVENTS, T.USERS, T.USER_LEVELS):
        assertDataFrameEqual(T.Warehouse(spark, forgotten).read(table).drop(*lineage), T.Warehouse(spark, rebuilt).read(table).drop(*lineage))

    # Weekly maintenance with the purge: OPTIMIZE's commits are no reason to refuse it.
    maintained = cli_in_process("maintain", "--purge-forgotten", "--warehouse", str(tmp_path / "forgotten"))
    assert maintained.returncode == 0, maintained.stderr
    purge_line = next(line for line in maintained.stderr.splitlines() if line.startswith("purge took"))
    wh = T.Warehouse(spark, forgotten)
    with pytest.raises(Exception, match=r"(?i)version"):  # the cost: versions before the purge are gone
        wh.read(T.USERS, 0).count()
    assert run(spark, forgotten).commits == []  # nothing new: the daily run after a purge reads nothing and writes nothing
    print(f"\nreal data, user {user}: rows removed {result.rows}; forget {result.seconds:.1f}s; {purge_line}")
