"""`run incremental` with nothing new starts no JVM: told from the warehouse's small files and the listing, logged in
ops.runs through delta-rs. Anything to do goes to Spark as before.

The command runs with JAVA_HOME pointing nowhere: a run that reaches Spark stops with "Java not found" (exit 2), so each
case shows which way it went without paying for a JVM.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import nothing_new
from lakehouse import tables as T
from lakehouse.generate import GenerateSpec, generate
from lakehouse.state import RunLock

from .helpers import land, run, versions

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("nothing-new") / "generated"
    generate(out, GenerateSpec(songs=30, users=5, days=2, events_per_day=150, seed=13))
    return out


def without_java(landing: Path, warehouse: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "JAVA_HOME": str(home / "no-java-here")}
    return subprocess.run([sys.executable, "-m", "lakehouse.cli", "run", "incremental", "--source", str(landing),
                           "--warehouse", str(warehouse)], capture_output=True, text=True, timeout=120, env=env)


def edit_state(warehouse: Path, change) -> str:
    """Change `_system/state.json` (a function of its JSON); returns its text as it was."""
    path = warehouse / "_system" / "state.json"
    before = path.read_text()
    path.write_text(json.dumps(change(json.loads(before))))
    return before


def test_nothing_new_needs_no_jvm_and_anything_to_do_goes_to_spark(spark, make_settings, generated: Path, tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    days = sorted(generated.glob("log_data/**/*.json"))
    settings = make_settings(landing, warehouse)
    land([*generated.glob("song_data/**/*.json"), days[0]], generated, landing)
    run(spark, settings)
    wh = T.Warehouse(spark, settings)
    runs_before, tables_before = wh.read(T.RUNS).count(), versions(spark, settings)
    assert nothing_new.work_to_do(settings) is None

    # Nothing new: exit 0, no JVM, one row in ops.runs (written by delta-rs, read here by Spark), no data table touched.
    quiet = without_java(landing, warehouse, tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert "Spark not started" in quiet.stderr and "Java not found" not in quiet.stderr
    rows = wh.read(T.RUNS).orderBy(F.col("started_at").desc()).collect()
    assert len(rows) == runs_before + 1
    assert (rows[0].kind, rows[0].status, rows[0].files_in, json.loads(rows[0].details)["spark_jobs"]) == ("incremental", "succeeded", 0, 0)
    assert versions(spark, settings) == tables_before
    assert not (warehouse / "_system" / "run.lock").exists(), "the lock is released"

    # Another run holds the lock: exit 3, as for any run.
    with RunLock(settings.system_path, "20261203T000000Z-holder", "full").held():
        busy = without_java(landing, warehouse, tmp_path)
    assert busy.returncode == 3 and "another run holds the warehouse lock: run 20261203T000000Z-holder" in busy.stderr, busy.stderr

    # Each kind of work to do is seen, and the command goes to Spark.
    app_id = f"{json.loads((warehouse / '_system' / 'state.json').read_text())['generation']}/{T.EVENTS_RAW.name}/batches"
    cases = {
        "a full run did not finish": lambda s: {**s, "full_in_progress": "20261203T000000Z-stopped"},
        "gold.songplays: silver.events version": lambda s: {**s, "watermarks": {**s["watermarks"], "gold.songplays<-silver.events": 0}},
        "bronze.events_raw: a batch a stopped run left": lambda s: {**s, "bronze_batches": {**s["bronze_batches"], app_id: -1}},
    }
    for reason, change in cases.items():
        before = edit_state(warehouse, change)
        try:
            assert (nothing_new.work_to_do(settings) or "").startswith(reason), reason
            went = without_java(landing, warehouse, tmp_path)
            assert went.returncode == 2 and "Java not found" in went.stderr, (reason, went.stderr)
        finally:
            (warehouse / "_system" / "state.json").write_text(before)
    queued = dataclasses.replace(settings, discovery="queue")
    assert nothing_new.work_to_do(queued) == "discovery = queue"

    # A day lands: Spark's run takes it (after delta-rs's commit to ops.runs), and then there is nothing new again.
    land(days[1:], generated, landing)
    assert nothing_new.work_to_do(settings) == "1 landed file(s) pending"
    went = without_java(landing, warehouse, tmp_path)
    assert went.returncode == 2 and "Java not found" in went.stderr, went.stderr
    report = run(spark, settings)
    assert report.status == "succeeded" and report.sources["log_data"].files == 1
    assert nothing_new.work_to_do(settings) is None
    assert wh.read(T.RUNS).count() == runs_before + 2
