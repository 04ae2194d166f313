from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lakehouse.errors import RunLockedError
from lakehouse.state import Files, PipelineState, RunLock, StateStore


def test_lock_is_exclusive_and_released(spark, tmp_path: Path) -> None:
    system = f"file:{tmp_path}"
    first = RunLock(system, "run-1", "incremental")
    first.acquire()
    with pytest.raises(RunLockedError, match="run run-1 \\(incremental, pid"):
        RunLock(system, "run-2", "full").acquire()
    first.release()
    assert not (tmp_path / "run.lock").exists()
    with RunLock(system, "run-3", "full").held():
        assert json.loads((tmp_path / "run.lock").read_text())["run_id"] == "run-3"


def test_lock_of_a_dead_process_is_taken_over(spark, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "run.lock").write_text(json.dumps({
        "run_id": "killed", "kind": "incremental", "pid": dead.pid, "host": os.uname().nodename,
        "started_at": "2026-01-01T00:00:00+00:00", "heartbeat_at": "2026-01-01T00:00:00+00:00"}))
    lock = RunLock(f"file:{tmp_path}", "next", "incremental")
    lock.acquire()
    assert "left by run killed" in caplog.text
    lock.release()


def test_live_lock_without_heartbeat_for_long_is_stale(spark, tmp_path: Path) -> None:
    (tmp_path / "run.lock").write_text(json.dumps({
        "run_id": "elsewhere", "pid": 1, "host": "another-host", "heartbeat_at": "2020-01-01T00:00:00+00:00"}))
    with RunLock(f"file:{tmp_path}", "next", "incremental").held():
        pass


def test_state_round_trip(spark, tmp_path: Path) -> None:
    store = StateStore(Files(spark), f"file:{tmp_path}")
    assert store.load().watermark("x") == -1
    store.save(PipelineState("g-1", {"x": 4}, None))
    assert store.load() == PipelineState("g-1", {"x": 4}, None)
