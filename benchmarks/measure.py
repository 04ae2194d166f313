"""Measuring from the outside: one step = one fresh process, timed wall-clock; commits and files read from the Delta logs.

Nothing here starts Spark: the Delta logs (`_delta_log/NNNNNNNNNNNNNNNNNNNN.json`) are plain files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"  # the venv's console script, what users run
DATA_LAYERS = ("bronze", "silver", "gold")
COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
TAIL_LINES = 40


class StepFailed(RuntimeError):
    """A measured process exited non-zero; the message has the end of its output."""


@dataclass
class Step:
    """One measured process: wall seconds from the outside; for a pipeline run, what its report and the Delta logs say."""

    seconds: float
    spark_jobs: int | None = None  # details["spark_jobs"] of the run's report
    commits_reported: int | None = None  # details["commits"]: Delta commits to bronze/silver/gold, as the run counted them
    data_commits: int | None = None  # new _delta_log/*.json files in bronze/silver/gold tables
    ops_commits: int | None = None  # the same in the other tables (ops.runs)
    committed: dict[str, int] = field(default_factory=dict)  # table -> new commits
    run_seconds: float | None = None  # the run's own duration_s (inside the process, after Spark started)
    layer_seconds: dict[str, float] = field(default_factory=dict)
    flow_seconds: dict[str, float] = field(default_factory=dict)
    output: str | None = None  # stdout of a query, for a sanity check


def run_timed(cmd: Sequence[str | Path], logs: Path, env: Mapping[str, str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    """Run `cmd` to completion; wall seconds around the whole process, and its stdout. Raises StepFailed (exit code not in `ok`)."""
    logs.parent.mkdir(parents=True, exist_ok=True)
    err_path = logs.with_suffix(".stderr")
    with err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                              env=dict(env), cwd=cwd, check=False)
        seconds = time.perf_counter() - started
    stdout = proc.stdout.decode(errors="replace")
    logs.with_suffix(".stdout").write_text(stdout)
    if proc.returncode not in ok:
        tail = (stdout + err_path.read_text(errors="replace")).splitlines()[-TAIL_LINES:]
        raise StepFailed(f"exit {proc.returncode}: {' '.join(str(c) for c in cmd)}\n" + "\n".join(tail))
    return round(seconds, 2), stdout


def delta_commits(warehouse: Path) -> dict[str, int]:
    """Commit files per table of the warehouse (tables live at <layer>/<name>/), e.g. {"gold.songplays": 3}."""
    counts: dict[str, int] = {}
    for log_dir in sorted(warehouse.glob("*/*/_delta_log")):
        name = f"{log_dir.parent.parent.name}.{log_dir.parent.name}"
        counts[name] = sum(1 for p in log_dir.iterdir() if COMMIT_FILE.match(p.name))
    return counts


def pipeline_step(seconds: float, report_json: Path, before: Mapping[str, int], after: Mapping[str, int]) -> Step:
    """A `lakehouse run` step: its wall time, its report's figures, and the commits the Delta logs gained."""
    committed = {t: n - before.get(t, 0) for t, n in after.items() if n != before.get(t, 0)}
    report: dict[str, Any] = json.loads(report_json.read_text())
    details: dict[str, Any] = report.get("details") or {}
    return Step(
        seconds=seconds,
        spark_jobs=details.get("spark_jobs"),
        commits_reported=details.get("commits"),
        data_commits=sum(n for t, n in committed.items() if t.split(".")[0] in DATA_LAYERS),
        ops_commits=sum(n for t, n in committed.items() if t.split(".")[0] not in DATA_LAYERS),
        committed=committed,
        run_seconds=report.get("duration_s"),
        layer_seconds=dict(details.get("layer_seconds") or {}),
        flow_seconds=dict(details.get("flow_seconds") or {}),
    )


def live_data_files(table_dir: Path) -> int | None:
    """Data files in the table's latest version: add minus remove actions of every commit from version 0.

    None when the log does not start at version 0 or has a gap (old commits cleaned up: a checkpoint would be needed).
    """
    log_dir = table_dir / "_delta_log"
    versions = sorted((int(m.group(1)), p) for p in log_dir.iterdir() if (m := COMMIT_FILE.match(p.name))) if log_dir.is_dir() else []
    if not versions or [v for v, _ in versions] != list(range(len(versions))):
        return None
    live: set[str] = set()
    for _, path in versions:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "add" in action:
                live.add(action["add"]["path"])
            elif "remove" in action:
                live.discard(action["remove"]["path"])
    return len(live)


def warehouse_files(warehouse: Path) -> dict[str, int | None]:
    """Data files of every silver and gold table, from the Delta logs."""
    return {f"{d.parent.name}.{d.name}": live_data_files(d)
            for layer in ("silver", "gold") for d in sorted((warehouse / layer).glob("*")) if (d / "_delta_log").is_dir()}


def parquet_files(root: Path) -> dict[str, int]:
    """Parquet files per table folder under `root` (the peer's output)."""
    return {d.name: sum(1 for _ in d.rglob("*.parquet")) for d in sorted(root.iterdir()) if d.is_dir()} if root.is_dir() else {}


def process_env(overrides: Mapping[str, str | int | None]) -> dict[str, str]:
    """This process's environment plus LAKEHOUSE_* settings (e.g. {"spark.master": "local[2]"}) that every step reads."""
    from lakehouse.config import SETTINGS

    by_key = {s.key: s for s in SETTINGS}
    env = dict(os.environ)
    for key, value in overrides.items():
        if value is not None:
            env[by_key[key].env_var] = str(value)
    return env


@dataclass
class SizeResult:
    """Every step measured at one history size (N days, then day N+1)."""

    days: int
    events: int
    new_day_events: int
    floor: Step
    peer: Step
    full: Step
    new_day: Step
    nothing_new: Step
    sql: Step
    files: dict[str, int | None] = field(default_factory=dict)  # silver/gold data files after the runs
    peer_files: dict[str, int] = field(default_factory=dict)
    repeats: int = 1
    events_per_day: int = 0  # of the landing data (the heavy size has 10x the others')
    heavy: bool = False
    commands: dict[str, float] = field(default_factory=dict)  # metadata commands (runs, history, ...) -> wall seconds

    @property
    def label(self) -> str:
        return f"{self.days} days × {self.events_per_day:,}" if self.heavy else f"{self.days} days"

    def steps(self) -> dict[str, Step]:
        return {"floor": self.floor, "peer": self.peer, "full": self.full, "new_day": self.new_day,
                "nothing_new": self.nothing_new, "sql": self.sql}

    @property
    def events_per_s(self) -> float | None:
        return self.events / self.full.seconds if self.full.seconds > 0 else None

    @property
    def ratios(self) -> dict[str, float | None]:
        return {"new_over_full": ratio(self.new_day.seconds, self.full.seconds),
                "full_over_floor": ratio(self.full.seconds, self.floor.seconds),
                "full_over_peer": ratio(self.full.seconds, self.peer.seconds)}

    def max_files(self, layer: str) -> int:
        return max((n or 0 for t, n in self.files.items() if t.startswith(f"{layer}.")), default=0)


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None
