"""Crash safety: a run killed (SIGKILL of its whole process group) at several moments, then run again,
ends with exactly the tables of an uninterrupted run. Also: one run at a time per warehouse."""

from __future__ import annotations

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
from lakehouse.generate import GenerateSpec, generate

from .helpers import gold_tables, run

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
def clean_run(landing: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted run by a real process, during which a second run on the same warehouse was started.

    Its warehouse is the reference for the killed runs; what the second run did is checked by its own test.
    """
    warehouse = tmp_path_factory.mktemp("clean") / "warehouse"
    first = _start_run(landing, warehouse)
    try:
        # Wait until the first run holds the lock, then start a second one.
        lock = warehouse / "_system" / "run.lock"
        deadline = time.monotonic() + 120
        while not lock.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.2)
        held = lock.exists()
        second = subprocess.run(_run_command(landing, warehouse), capture_output=True, text=True, timeout=180, env=ENV)
        output, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    return {"warehouse": warehouse, "held": held, "second": second, "first_code": first.returncode, "first_output": output}


# Moments: as a bronze batch is marked complete (the replay of a batch whose writes were committed is
# tested deterministically in test_bronze_record), after bronze (before silver's MERGEs), after silver (mid-gold).
MOMENTS = (r"bronze log_data: batch \d+ written", r"bronze done", r"silver done")


def test_runs_killed_at_three_moments_then_a_rerun_equals_a_clean_run(spark, make_settings, landing: Path, tmp_path: Path,
                                                                      clean_run: dict) -> None:
    """Each run is SIGKILLed at a later moment than the one before and starts from what that one left."""
    assert clean_run["first_code"] == 0, clean_run["first_output"]
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
    assert clean_run["held"], "the first run never took the lock"
    second = clean_run["second"]
    assert second.returncode == 3, second.stderr
    assert "another run holds the warehouse lock" in second.stderr and "Traceback" not in second.stderr
    assert clean_run["first_code"] == 0, clean_run["first_output"]
    # The first run's result is complete and consistent.
    wh = T.Warehouse(spark, make_settings(landing, clean_run["warehouse"]))
    events = wh.read(T.EVENTS)
    assert events.count() == events.select("user_id", "session_id", "item_in_session", "ts").distinct().count() > 0
