"""Scheduled as teams schedule it: `sources pending` and `gate` (no JVM), the watch mode, and the Airflow DAG run by `airflow dags test`.

One small landing zone, and one warehouse built from it by a direct run (shared with test_cli: helpers.SMALL): what the
watch mode and the DAG leave must equal it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.report import RunReport
from lakehouse.watch import Watch, stop_on_signals

from .helpers import SMALL, land, run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = ROOT / ".cache" / "airflow"
LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli"]
# Every table a run writes but ops.runs, without the columns that say when, by which run or in which batch (files
# that land in two runs make two batches), without the files' modification times (a file landed later), and with
# file paths from the landing zone's root on (both are folders called landing).
COMPARED = [t for t in T.ALL_TABLES if t not in (T.RUNS, T.FORGOTTEN)]
WHEN = ("_ingested_at", "ingested_at", "run_id", "quarantined_at", "_batch_id", "batch_id", "_source_modified_at", "modified_at")
PATHS = ("_source_file", "path", "file")


@pytest.fixture(scope="module")
def landing(generated_warehouse) -> Path:
    return generated_warehouse(SMALL).root


@pytest.fixture(scope="module")
def reference(generated_warehouse) -> Settings:
    """The warehouse of one direct `run incremental` over the landing zone."""
    return generated_warehouse(SMALL).settings


def assert_same_warehouse(spark, got: Settings, expected: Settings) -> None:
    want, have = T.Warehouse(spark, expected), T.Warehouse(spark, got)
    for table in COMPARED:
        if not want.exists(table):
            assert not have.exists(table), table.qualified
            continue
        columns = [F.regexp_replace(c, r"^.*/landing/", "").alias(c) if c in PATHS else F.col(c)
                   for c in table.schema.fieldNames() if c not in WHEN]
        assertDataFrameEqual(have.read(table).select(*columns), want.read(table).select(*columns), checkRowOrder=False)


def lakehouse(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAKEHOUSE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


# ---------------------------------------------------------------------------------------- sources pending
def test_sources_pending_needs_no_jvm_and_exits_as_a_sensor_expects(spark, make_settings, landing: Path, tmp_path: Path) -> None:
    """0 with files pending, 1 with none, 2 on bad input; with JAVA_HOME pointing nowhere, so no JVM can have started."""
    source = tmp_path / "landing"
    shutil.copytree(landing / "song_data", source / "song_data")
    first_day, second_day = sorted((landing / "log_data").rglob("*.json"))
    land([first_day], landing, source)
    settings = make_settings(source, tmp_path / "warehouse")
    no_java = {"JAVA_HOME": str(tmp_path / "no-java")}
    where = ("--source", str(source), "--warehouse", str(tmp_path / "warehouse"))

    proc = lakehouse("sources", "pending", "--format", "json", *where, env=no_java)
    assert proc.returncode == 0, proc.stderr
    pending = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(pending) == 61 and {p["reason"] for p in pending} == {"new"}, pending[:3]
    assert "no bronze.landed_files yet" in " ".join(proc.stderr.split())  # the console may wrap a long path's line

    report = run(spark, settings)
    # The gate after the run reads its row from the Delta log: no JVM either.
    gate = lakehouse("gate", "--run-id", report.run_id, "--warehouse", str(tmp_path / "warehouse"), env=no_java)
    assert gate.returncode == 0 and f"gate: run {report.run_id} (incremental) passed" in gate.stderr, gate.stderr
    gate = lakehouse("gate", "--run-id", "nope", "--warehouse", str(tmp_path / "warehouse"), env=no_java)
    assert gate.returncode == 2 and "no run 'nope' in ops.runs" in gate.stderr, gate.stderr
    proc = lakehouse("sources", "pending", *where, env=no_java)
    assert (proc.returncode, proc.stdout) == (1, ""), proc.stderr
    assert "0 file(s) pending" in proc.stderr
    # OPTIMIZE is a new version of bronze.landed_files that changes no data: the cached index stays current.
    commits = tmp_path / "warehouse" / "bronze" / "landed_files" / "_delta_log"
    before = len(list(commits.glob("*.json")))
    spark.sql(f"OPTIMIZE delta.`{settings.warehouse}/bronze/landed_files`").collect()
    assert len(list(commits.glob("*.json"))) == before + 1  # the two batches' files compacted: a version of its own
    assert lakehouse("sources", "pending", *where, env=no_java).returncode == 1

    # A new day, and a known file landed again (a new modification time): both pending, and nothing else.
    land([second_day], landing, source)
    song = next((source / "song_data").rglob("*.json"))
    os.utime(song, (time.time(), time.time() + 5))
    proc = lakehouse("sources", "pending", "--format", "json", *where, env=no_java)
    assert proc.returncode == 0, proc.stderr
    assert [(p["file"], p["reason"]) for p in map(json.loads, proc.stdout.splitlines())] == [
        (second_day.relative_to(landing).as_posix(), "new"), (song.relative_to(source).as_posix(), "landed again")]

    # Without the cached index (a run stopped before writing it) the answer is "a run is due", never "nothing".
    (tmp_path / "warehouse" / "_system" / "landed_files.index").unlink()
    proc = lakehouse("sources", "pending", *where, env=no_java)
    assert proc.returncode == 0 and "a run is due" in proc.stderr, proc.stderr

    proc = lakehouse("sources", "pending", "--source", str(tmp_path / "missing"), env=no_java)
    assert proc.returncode == 2 and "no such directory" in proc.stderr, proc.stderr


def test_watch_flags_are_checked_before_spark_starts(tmp_path: Path) -> None:
    (tmp_path / "landing" / "log_data").mkdir(parents=True)
    where = ("--source", str(tmp_path / "landing"), "--warehouse", str(tmp_path / "wh"))
    for args, fragment in ((("run", "full", "--watch"), "--watch goes with `run incremental`"),
                           (("run", "incremental", "--every", "30s"), "--every goes with --watch"),
                           (("run", "incremental", "--watch", "--every", "0s"), "positive duration")):
        proc = lakehouse(*args, *where, env={"JAVA_HOME": str(tmp_path / "no-java")})
        assert proc.returncode == 2 and fragment in proc.stderr, proc.stderr


# ---------------------------------------------------------------------------------------- watch mode
@pytest.fixture
def signals_restored() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_watch_runs_when_files_land_and_sigterm_ends_it_after_the_cycle(
        spark, make_settings, landing: Path, reference: Settings, tmp_path: Path, signals_restored: None) -> None:
    """First cycle: songs and day 1; day 2 lands; SIGTERM arrives while its cycle runs: the cycle ends, then the watch (0).

    What it leaves equals a direct run over the same files; ops.runs has one row per cycle.
    """
    source = tmp_path / "landing"
    shutil.copytree(landing / "song_data", source / "song_data")
    first_day, second_day = sorted((landing / "log_data").rglob("*.json"))
    land([first_day], landing, source)
    settings = make_settings(source, tmp_path / "warehouse")
    lock = tmp_path / "warehouse" / "_system" / "run.lock"
    stop = threading.Event()
    cycles: list[tuple[RunReport, bool]] = []  # each cycle's report, and whether SIGTERM had come by its end
    done_first = threading.Event()

    def on_run(report: RunReport) -> None:
        cycles.append((report, stop.is_set()))
        done_first.set()

    def land_then_terminate() -> None:
        if not done_first.wait(120):
            return
        shutil.copy(second_day, source / second_day.relative_to(landing))  # lands now: a fresh modification time
        deadline = time.monotonic() + 120
        while not lock.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)

    stop_on_signals(stop)
    helper = threading.Thread(target=land_then_terminate, daemon=True)
    helper.start()
    assert Watch(spark, settings, every=0.2, stop=stop, on_run=on_run).run() == 0
    helper.join(10)

    assert [(r.status, r.trigger, stopped) for r, stopped in cycles] == [("succeeded", "watch", False), ("succeeded", "watch", True)]
    assert [r.sources["log_data"].files for r, _ in cycles] == [1, 1]
    latency = cycles[1][0].landing_to_gold()
    assert latency is not None and 0 < latency["newest"] <= latency["oldest"] < 120, latency
    assert not lock.exists(), "the watch must hold no lock between cycles, nor after it stopped"
    assert_same_warehouse(spark, settings, reference)
    runs = T.Warehouse(spark, settings).read(T.RUNS).orderBy("started_at").collect()
    assert [(r.run_id, json.loads(r.details)["trigger"]) for r in runs] == [(r.run_id, "watch") for r, _ in cycles]
    assert "oldest" in json.loads(runs[1].details)["landing_to_gold_s"]


def test_a_failing_cycle_ends_the_watch_as_a_failed_run_ends(spark, make_settings, landing: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A quality rule set to fail: the watch stops with the run's error (exit 2), its row failed, the lock released."""
    rules = tmp_path / "quality.toml"
    rules.write_text('[events.no_paid_users]\ncheck = "level = \'free\'"\naction = "fail"\n')
    monkeypatch.setenv("LAKEHOUSE_QUALITY_FILE", str(rules))
    settings = make_settings(landing, tmp_path / "warehouse")
    with pytest.raises(LakehouseError, match="no_paid_users") as failed:
        Watch(spark, settings, every=0.2).run()
    assert failed.value.exit_code == 2
    row = T.Warehouse(spark, settings).read(T.RUNS).where(F.col("status") == "failed").collect()
    assert len(row) == 1 and json.loads(row[0].details)["trigger"] == "watch"
    assert not (tmp_path / "warehouse" / "_system" / "run.lock").exists()


# ---------------------------------------------------------------------------------------- Airflow
def airflow_env(tmp_path: Path, landing: Path) -> dict[str, str]:
    if not (AIRFLOW / ".installed").exists():
        pytest.skip(f"Airflow's environment {AIRFLOW} is not built: `make setup` builds it")
    home = tmp_path / "airflow-home"
    home.mkdir()
    shutil.copy(AIRFLOW / "home" / "airflow.db", home / "airflow.db")  # migrated once by `make setup`
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AIRFLOW", "PYSPARK_"))}
    return {**env, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "deploy" / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "LAKEHOUSE_HOME": str(ROOT), "LAKEHOUSE_SOURCE": str(landing), "LAKEHOUSE_WAREHOUSE": str(tmp_path / "warehouse"),
            "LAKEHOUSE_DASHBOARD_DIR": str(tmp_path / "dashboard")}


OPERATOR_CHECK = """
import sys
from airflow.sdk.exceptions import AirflowFailException, AirflowException
sys.path.insert(0, sys.argv[1])
import lakehouse_dags as dags

assert {dags.daily_dag.dag_id, dags.full_dag.dag_id} == {"lakehouse_daily", "lakehouse_full"}
assert dags.full_dag.schedule is None and set(dags.full_dag.params) == {"reingest", "allow_missing_source"}
for code, expected in ((3, AirflowException), (2, AirflowFailException), (1, AirflowFailException)):
    op = dags.LakehouseCommand(task_id=f"exit{code}", bash_command=f"exit {code}")
    try:
        op.execute({})
    except AirflowException as exc:
        assert type(exc) is expected, (code, type(exc))
    else:
        raise AssertionError(f"exit {code} did not fail")
print("ok")
"""


def test_dag_file_retries_only_a_busy_warehouse(tmp_path: Path, landing: Path) -> None:
    """Exit 3 raises Airflow's retryable exception, 2 and 1 the final one; both DAGs load with their params."""
    env = airflow_env(tmp_path, landing)
    proc = subprocess.run([str(AIRFLOW / "bin" / "python"), "-c", OPERATOR_CHECK, str(ROOT / "deploy" / "airflow")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-2000:] + proc.stderr[-3000:]


def test_daily_dag_end_to_end_equals_a_direct_run(spark, landing: Path, reference: Settings, tmp_path: Path) -> None:
    """`airflow dags test` on a Monday: sensor, spark-submit daily run, gate, dashboard; maintenance skipped (not Sunday)."""
    env = airflow_env(tmp_path, landing)
    proc = subprocess.run([str(AIRFLOW / "bin" / "airflow"), "dags", "test", "lakehouse_daily", "2026-11-30"],
                          capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    with sqlite3.connect(tmp_path / "airflow-home" / "airflow.db") as db:
        states = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = 'lakehouse_daily'").fetchall())
        pushed = dict(db.execute("SELECT task_id, value FROM xcom WHERE dag_id = 'lakehouse_daily' AND key = 'return_value'").fetchall())
    assert proc.returncode == 0 and states == {"wait_for_files": "success", "daily": "success", "gate": "success",
                                               "dashboard": "success", "maintenance_day": "success", "maintain": "skipped"}, \
        f"{states}\n{log[-6000:]}"

    import dataclasses

    settings = dataclasses.replace(reference, warehouse=f"file:{tmp_path / 'warehouse'}")
    assert_same_warehouse(spark, settings, reference)
    run_id = json.loads(pushed["daily"])
    row = T.Warehouse(spark, settings).read(T.RUNS).where(F.col("run_id") == run_id).collect()
    assert [(r.kind, r.status) for r in row] == [("incremental", "succeeded")], run_id
    assert json.loads(pushed["gate"]) == f"gate: run {run_id} (incremental) passed"  # the gate's last line
    assert (tmp_path / "dashboard" / "index.html").is_file()
