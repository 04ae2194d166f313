"""Crash safety: a run killed (SIGKILL of its whole process group) at several moments, then run again,
ends with exactly the tables of an uninterrupted run. Also: one run at a time per warehouse."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.generate import GenerateSpec, generate
from lakehouse.state import RunLock

from .helpers import gold_tables, run, versions

pytestmark = pytest.mark.e2e


def _run_command(source: Path, warehouse: Path) -> list[str]:
    return [sys.executable, "-m", "lakehouse.cli", "run", "incremental", "--source", str(source), "--warehouse", str(warehouse)]


ENV = {**os.environ, "COLUMNS": "200"}


def _start_run(source: Path, warehouse: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(_run_command(source, warehouse), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=ENV)


def _kill_when(proc: subprocess.Popen[str], pattern: str, timeout: float = 240) -> str:
    """Read the run's output until `pattern` appears, then SIGKILL its whole process group (JVM included)."""
    seen = []
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if re.search(pattern, line):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
            return "".join(seen)
        if time.monotonic() > deadline:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"never saw {pattern!r} in:\n{''.join(seen)}")


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crash-landing")
    generate(out, GenerateSpec(songs=120, users=15, days=3, events_per_day=600, seed=11))
    return out


@pytest.fixture(scope="module")
def clean_run(spark, base_settings: Settings, landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted run (the reference for the killed runs; in this process, whose JVM is warm), then a real
    `lakehouse run` process started while the run lock is held, as a run holds it. What that second process did is
    checked by its own test."""
    warehouse = tmp_path_factory.mktemp("clean") / "warehouse"
    settings = dataclasses.replace(base_settings, source=f"file:{landing}", warehouse=f"file:{warehouse}")
    report = run(spark, settings)
    versions_before = versions(spark, settings)
    with RunLock(settings.system_path, "20261203T000000Z-holder", "incremental").held():
        second = subprocess.run(_run_command(landing, warehouse), capture_output=True, text=True, timeout=180, env=ENV)
    return {"warehouse": warehouse, "report": report, "second": second, "untouched": versions(spark, settings) == versions_before}


# Moments: as a bronze batch is marked complete (the replay of a batch whose writes were committed is
# tested deterministically in test_bronze_record), after bronze (before silver's MERGEs), after silver (mid-gold).
MOMENTS = (r"bronze log_data: batch \d+ written", r"bronze done", r"silver done")


def test_runs_killed_at_three_moments_then_a_rerun_equals_a_clean_run(spark, make_settings, landing: Path, tmp_path: Path,
                                                                      clean_run: dict) -> None:
    """Each run is SIGKILLed at a later moment than the one before and starts from what that one left."""
    assert clean_run["report"].status == "succeeded"
    clean_settings = make_settings(landing, clean_run["warehouse"])
    expected = {name: df.collect() for name, df in gold_tables(spark, clean_settings).items()}
    warehouse = tmp_path / "warehouse"
    for moment in MOMENTS:
        output = _kill_when(_start_run(landing, warehouse), moment)
        assert (warehouse / "_system" / "run.lock").exists(), f"the run killed at {moment!r} should have left its lock behind"
        if moment != MOMENTS[0]:
            assert "taking over" in output.lower() or "stale" in output.lower(), output

    settings = make_settings(landing, warehouse)
    run(spark, settings)  # takes over the stale lock, finishes the work
    for name, df in gold_tables(spark, settings).items():
        assertDataFrameEqual(df, spark.createDataFrame(expected[name], T.BY_NAME[name].schema), checkRowOrder=False)
    wh = T.Warehouse(spark, settings)
    assert wh.read(T.EVENTS_RAW).count() == T.Warehouse(spark, clean_settings).read(T.EVENTS_RAW).count()


def test_second_run_on_same_warehouse_stops_clearly(spark, make_settings, landing: Path, clean_run: dict) -> None:
    second = clean_run["second"]
    assert second.returncode == 3, second.stderr
    assert "another run holds the warehouse lock: run 20261203T000000Z-holder (incremental" in second.stderr
    assert "Traceback" not in second.stderr
    assert clean_run["untouched"], "the refused run wrote to the warehouse"
    # The reference run's result is complete and consistent.
    wh = T.Warehouse(spark, make_settings(landing, clean_run["warehouse"]))
    events = wh.read(T.EVENTS)
    assert events.count() == events.select("user_id", "session_id", "item_in_session", "ts").distinct().count() > 0
