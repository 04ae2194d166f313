"""What a run did: counts per source, commits, drift, files re-read or dropped; written as one row of ops.runs (`log_run`)."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from lakehouse import tables as T

log = logging.getLogger(__name__)


@dataclass
class SourceCounts:
    files: int = 0
    rows_in: int = 0
    loaded: int = 0
    quarantined: int = 0
    forgotten: int = 0  # rows of users on the erasure list, dropped before they are counted in (lakehouse.erasure)

    def add(self, other: SourceCounts) -> None:
        self.files += other.files
        self.rows_in += other.rows_in
        self.loaded += other.loaded
        self.quarantined += other.quarantined
        self.forgotten += other.forgotten


@dataclass
class LeftBronze:
    """Landed files that bronze held and a `run full --reingest` dropped (gone from the landing zone)."""

    files: int
    rows: int
    examples: list[str]


@dataclass
class RunReport:
    """What a run did; becomes one row of ops.runs and the end-of-run summary."""

    run_id: str
    kind: str
    started_at: datetime
    sources: dict[str, SourceCounts] = field(default_factory=dict)
    commits: list[T.Commit] = field(default_factory=list)
    layer_seconds: dict[str, float] = field(default_factory=dict)
    flow_seconds: dict[str, float] = field(default_factory=dict)  # the silver and gold flows that ran
    spark_jobs: int | None = None  # Spark jobs the run started (None: not known)
    quality: dict[str, int] = field(default_factory=dict)
    # source -> field -> rows: fields the JSON schema does not name, kept in bronze's _rescued_data
    new_fields: dict[str, dict[str, int]] = field(default_factory=dict)
    # source -> paths of files that landed again under a known name with other content (read again)
    reuploaded: dict[str, list[str]] = field(default_factory=dict)
    left_bronze: LeftBronze | None = None
    # how the landing zone was searched (lakehouse.record.discovery.Found.details): mode, figures, requests, reconciliation
    discovery: dict[str, Any] | None = None
    # `forget`: user ids, rows removed per table, ids with no rows, whether old versions were purged (no names)
    erasure: dict[str, Any] | None = None
    status: str = "running"
    error: str | None = None
    ended_at: datetime | None = None
    trigger: str | None = None  # what started the run, when not a command of its own ("watch": a cycle of the watch mode)
    landing_times: tuple[int, int] | None = None  # (oldest, newest) modification time in ms of the file versions the run read

    def totals(self) -> SourceCounts:
        total = SourceCounts()
        for counts in self.sources.values():
            total.add(counts)
        return total

    def rows_written(self) -> dict[str, int]:
        if self.erasure is not None:  # a `forget` run writes no rows: it removes them (negative counts)
            return {name: -n for name, n in self.erasure["rows_removed"].items()}
        rows: dict[str, int] = {}
        for c in self.commits:
            rows[c.table] = rows.get(c.table, 0) + c.rows_out()
        return rows

    def versions_written(self) -> dict[str, int]:
        return {c.table: c.version for c in self.commits}

    @contextlib.contextmanager
    def timed_layer(self, layer: str) -> Iterator[None]:
        """Time one layer of the run into `layer_seconds` and log "<layer> done in Ns" when it ends."""
        started = time.perf_counter()
        yield
        self.layer_seconds[layer] = round(time.perf_counter() - started, 2)
        log.info("%s done in %.1fs", layer, self.layer_seconds[layer])

    def add_new_fields(self, source: str, counts: dict[str, int]) -> None:
        seen = self.new_fields.setdefault(source, {})
        for name, rows in counts.items():
            seen[name] = seen.get(name, 0) + rows

    @property
    def duration_s(self) -> float:
        end = self.ended_at or datetime.now(timezone.utc)
        return (end - self.started_at).total_seconds()

    def details(self) -> dict[str, Any]:
        """The `details` JSON of the run's ops.runs row."""
        out: dict[str, Any] = {
            "sources": {k: vars(v) for k, v in self.sources.items()},
            "layer_seconds": self.layer_seconds,
            "flow_seconds": self.flow_seconds,
            "spark_jobs": self.spark_jobs,
            "commits": len([c for c in self.commits if c.table.split(".")[0] in ("bronze", "silver", "gold")]),
            "quality_rule_violations": self.quality,
            "new_fields": self.new_fields,
            "reuploaded_files": self.reuploaded,
        }
        if self.trigger is not None:
            out["trigger"] = self.trigger
        latency = self.landing_to_gold()
        if latency is not None:
            out["landing_to_gold_s"] = latency
        if self.left_bronze is not None:
            out["left_bronze"] = vars(self.left_bronze)
        if self.discovery is not None:
            out["discovery"] = self.discovery
        if self.erasure is not None:
            out["erasure"] = self.erasure
        return out

    def landing_to_gold(self) -> dict[str, float] | None:
        """Seconds from the oldest and the newest file's landing (its modification time) to the run's end; None without files."""
        if self.landing_times is None or self.ended_at is None:
            return None
        end_ms = self.ended_at.timestamp() * 1000
        oldest, newest = self.landing_times
        return {"oldest": round((end_ms - oldest) / 1000, 2), "newest": round((end_ms - newest) / 1000, 2)}

    def drift_lines(self) -> list[str]:
        """One line per finding an operator should notice: new fields, re-read files, files dropped."""
        lines = [f"{source}: new field {name} in {rows:,} rows (kept in _rescued_data)"
                 for source, found in sorted(self.new_fields.items()) for name, rows in sorted(found.items())]
        for source, counts in sorted(self.sources.items()):
            if counts.forgotten:
                lines.append(f"{source}: {counts.forgotten:,} rows of forgotten users dropped (erasure list: ops.forgotten_users)")
        for source, paths in sorted(self.reuploaded.items()):
            lines.append(f"{source}: {len(paths)} file(s) landed again with new content and were read again: "
                         + ", ".join(paths[:3]) + (f" (+{len(paths) - 3} more)" if len(paths) > 3 else ""))
        missed = (self.discovery or {}).get("reconcile", {})
        if missed.get("missed"):
            files = missed["files"]
            lines.append(f"reconciliation: {missed['missed']} file(s) that discovery had missed, ingested now: " + ", ".join(files[:5])
                         + (f" (+{missed['missed'] - 5} more)" if missed["missed"] > 5 else ""))
        if self.left_bronze is not None and self.left_bronze.files:
            lb = self.left_bronze
            lines.append(f"bronze: {lb.files} file(s), {lb.rows:,} rows left (no longer in the landing zone): "
                         + ", ".join(lb.examples))
        return lines


def new_run_id() -> str:
    """A run's id: its start time in UTC, then six hex digits (sorts by start; unique among runs started together)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def run_row(report: RunReport) -> dict[str, Any]:
    """The run's row of ops.runs (timestamps naive in UTC)."""
    totals = report.totals()
    return {
        "run_id": report.run_id,
        "kind": report.kind,
        "status": report.status,
        "started_at": report.started_at.replace(tzinfo=None),
        "ended_at": (report.ended_at or datetime.now(timezone.utc)).replace(tzinfo=None),
        "duration_s": round(report.duration_s, 2),
        "files_in": totals.files,
        "rows_in": totals.rows_in,
        "rows_loaded": totals.loaded,
        "rows_quarantined": totals.quarantined,
        "rows_written": T.as_json(report.rows_written()),
        "versions_written": T.as_json(report.versions_written()),
        "details": T.as_json(report.details()),
        "error": report.error,
    }


def log_run(wh: T.Warehouse, report: RunReport) -> None:
    """Append the run's row to ops.runs (a run, maintain or forget); a failure to do so is logged, never raised."""
    try:
        wh.append(T.RUNS, wh.spark.createDataFrame([run_row(report)], T.RUNS.schema))
    except Exception:  # the run's own outcome matters more than its log line
        log.exception("could not append to %s", T.RUNS.qualified)
