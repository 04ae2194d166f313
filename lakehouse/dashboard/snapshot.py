"""What the dashboard shows: what the warehouse knows about itself, read once (each table's Delta log: version,
files, statistics and history; ops.runs, bronze.quarantine, the analytics answers) into plain data for
lakehouse.dashboard.site to render. Read with delta-rs (lakehouse.deltalog): no JVM, no data file opened for counts."""

from __future__ import annotations

import json
import logging
import re
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse import tables as T
from lakehouse.dashboard.sandboxes import SandboxTable, sandbox_folders
from lakehouse.sql import questions

if TYPE_CHECKING:
    from lakehouse.config import Settings
    from lakehouse.deltalog import Facts

log = logging.getLogger(__name__)
HISTORY_VERSIONS = 8
QUARANTINE_REASONS = 20
SAMPLES_PER_REASON = 3
SAMPLE_CHARS = 300
RUNS_SHOWN = 30


@dataclass
class TableInfo:
    """One table as the dashboard shows it: size, layout, columns and its recent versions."""

    name: str
    layer: str
    grain: str
    rows: int
    version: int
    last_write: datetime | None
    files: int
    size_bytes: int
    partition_by: list[str]
    features: list[str]
    properties: dict[str, str]
    columns: list[tuple[str, str, str]]  # name, type, comment
    history: list[dict[str, Any]]  # version, timestamp, operation, rows_written


@dataclass
class Run:
    """One row of ops.runs with its JSON details parsed (unknown keys kept in `details`)."""

    run_id: str
    kind: str
    status: str
    started_at: datetime | None
    duration_s: float
    files_in: int
    rows_in: int
    rows_loaded: int
    rows_quarantined: int
    error: str | None
    layer_seconds: dict[str, float] = field(default_factory=dict)
    sources: dict[str, dict[str, int]] = field(default_factory=dict)
    violations: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Answer:
    """One analytics question (lakehouse/sql/*.sql) and its rows."""

    key: str
    title: str
    columns: list[str]
    rows: list[dict[str, Any]]


@dataclass
class Snapshot:
    """Everything the dashboard shows, read at `taken_at`."""

    warehouse: str
    taken_at: datetime
    tables: list[TableInfo]
    runs: list[Run]
    quarantine: list[dict[str, Any]]  # source, reason, rows, samples
    newest_event: datetime | None
    last_success: datetime | None
    answers: list[Answer]
    read_seconds: float = 0.0
    sandboxes: list[SandboxTable] = field(default_factory=list)  # the analysts' tables (lakehouse.dashboard.sandboxes)


def parse_run(row: dict[str, Any]) -> Run:
    """A Run from an ops.runs row; details that are missing, malformed or of unknown shape are tolerated."""
    try:
        details = json.loads(row.get("details") or "{}")
    except ValueError:
        details = {}
    if not isinstance(details, dict):
        details = {}

    def numbers(value: Any) -> dict[str, Any]:
        return {str(k): v for k, v in value.items() if isinstance(v, (int, float))} if isinstance(value, dict) else {}

    sources = details.get("sources")
    return Run(
        run_id=str(row.get("run_id")), kind=str(row.get("kind")), status=str(row.get("status")),
        started_at=row.get("started_at"), duration_s=float(row.get("duration_s") or 0),
        files_in=int(row.get("files_in") or 0), rows_in=int(row.get("rows_in") or 0),
        rows_loaded=int(row.get("rows_loaded") or 0), rows_quarantined=int(row.get("rows_quarantined") or 0),
        error=row.get("error"),
        layer_seconds={k: float(v) for k, v in numbers(details.get("layer_seconds")).items()},
        sources={str(k): numbers(v) for k, v in sources.items()} if isinstance(sources, dict) else {},
        violations={k: int(v) for k, v in numbers(details.get("quality_rule_violations")).items()},
        details=details,
    )


def quarantine_spikes(runs: list[Run], factor: float = 3.0, floor: float = 0.01) -> set[str]:
    """Runs whose quarantined share of rows in is above `floor` and `factor` times the median share."""
    shares = {r.run_id: r.rows_quarantined / r.rows_in for r in runs if r.rows_in > 0}
    if not shares:
        return set()
    typical = statistics.median(shares.values())
    return {rid for rid, share in shares.items() if share > floor and share > factor * typical}


def ago(then: datetime | None, now: datetime) -> str:
    """'3 h ago', '12 days ago'; '—' when unknown."""
    if then is None:
        return "—"
    seconds = (now.replace(tzinfo=None) - then.replace(tzinfo=None)).total_seconds()
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago" if unit != "days" else f"{seconds / size:.0f} days ago"
    return f"{seconds:.0f} s ago"


def _rows_written(operation: str, metrics: dict[str, str] | None) -> int:
    return T.Commit("", 0, operation, dict(metrics or {})).rows_out()


def _table_info(table: T.Table, facts: Facts | None, rows: int | None) -> TableInfo | None:
    """The table's figures from its Delta log, or None when it does not exist (yet)."""
    if facts is None:
        return None
    history = [{"version": c["version"], "timestamp": c["timestamp"], "operation": c["operation"],
                "rows_written": _rows_written(str(c["operation"]), c["operationMetrics"])} for c in facts.history]
    detail = facts.detail
    return TableInfo(
        name=table.qualified, layer=table.layer, grain=detail.get("description") or table.comment,
        rows=int(facts.rows if facts.rows is not None else rows or 0), version=facts.version, last_write=detail.get("lastModified"),
        files=int(detail.get("numFiles") or 0), size_bytes=int(detail.get("sizeInBytes") or 0),
        partition_by=list(detail.get("partitionColumns") or []), features=sorted(detail.get("tableFeatures") or []),
        properties=dict(detail.get("properties") or {}), columns=facts.columns, history=history,
    )


QUARANTINE_SQL = f"""
    SELECT source, reason, count(*) AS n FROM quarantine GROUP BY source, reason
    ORDER BY n DESC, source, reason LIMIT {QUARANTINE_REASONS}"""
QUARANTINE_SAMPLES_SQL = f"""
    SELECT source, reason, raw FROM (
        SELECT source, reason, substr(raw, 1, {SAMPLE_CHARS + 1}) AS raw,
               row_number() OVER (PARTITION BY source, reason ORDER BY quarantined_at, file) AS rn
        FROM quarantine) WHERE rn <= {SAMPLES_PER_REASON}"""


def _quarantine(counts: list[dict[str, Any]], samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quarantined rows per (source, reason), most first, with a few raw samples (truncated)."""
    shown: dict[tuple[str, str], list[str]] = {}
    for r in samples:
        if r["raw"] is not None:
            shown.setdefault((r["source"], r["reason"]), []).append(r["raw"])
    return [
        {"source": r["source"], "reason": r["reason"], "rows": int(r["n"]),
         "samples": [s if len(s) <= SAMPLE_CHARS else s[:SAMPLE_CHARS] + "…" for s in shown.get((r["source"], r["reason"]), [])]}
        for r in counts
    ]


def _gold_names(query: str) -> str:
    """A question's `gold.x` tables as the names they are registered under for delta-rs (`gold_x`)."""
    return re.sub(r"\bgold\.(\w+)", r"gold_\1", query)


def collect(settings: Settings) -> Snapshot:
    """Read everything the dashboard shows from the Delta logs and small tables, with delta-rs (no JVM).

    Row counts and the newest event come from the per-file statistics in the log (no data file is opened);
    ops.runs and the quarantine are read, and the analytics questions answered, by delta-rs's query engine.
    """
    from lakehouse.deltalog import Request, read

    started = time.perf_counter()

    def uri(table: T.Table) -> str:
        return settings.table_path(table.layer, table.name)

    folders = sandbox_folders(settings.sandbox_path)
    facts = read([Request("facts", (uri(t), HISTORY_VERSIONS, ("start_time",) if t is T.SONGPLAYS else ())) for t in T.ALL_TABLES]
                 + [Request("facts", (folder, 1)) for _, _, folder in folders])
    present = {t.qualified: f for t, f in zip(T.ALL_TABLES, facts, strict=False) if f is not None}
    sandboxes = [SandboxTable(schema, name, f.version, int(f.detail["numFiles"]), int(f.detail["sizeInBytes"]), f.detail["lastModified"])
                 for (schema, name, _), f in zip(folders, facts[len(T.ALL_TABLES):], strict=True) if f is not None]
    # A table whose files lack statistics is counted; anything else below only reads what exists.
    uncounted = [t for t in T.ALL_TABLES if t.qualified in present and present[t.qualified].rows is None]
    requests = [Request("query", ({"t": uri(t)}, "SELECT count(*) AS n FROM t")) for t in uncounted]
    if T.RUNS.qualified in present:
        requests.append(Request("rows", (uri(T.RUNS),)))
    if T.QUARANTINE.qualified in present:
        requests += [Request("query", ({"quarantine": uri(T.QUARANTINE)}, sql)) for sql in (QUARANTINE_SQL, QUARANTINE_SAMPLES_SQL)]
    asked = questions() if all(t.qualified in present for t in T.GOLD_TABLES) else []
    gold = {f"gold_{t.name}": uri(t) for t in T.GOLD_TABLES}
    requests += [Request("query", (gold, _gold_names(q.query))) for q in asked]
    answers = iter(read(requests) if requests else [])
    counted = {t.qualified: int(next(answers)[1][0]["n"]) for t in uncounted}
    runs: list[Run] = []
    last_success = None
    if T.RUNS.qualified in present:
        every = next(answers)
        recent = sorted(every, key=lambda r: r["started_at"] or datetime.min, reverse=True)[:RUNS_SHOWN]
        runs = sorted((parse_run(r) for r in recent), key=lambda r: r.started_at or datetime.min)
        last_success = max((r["ended_at"] for r in every if r["status"] == "succeeded" and r["ended_at"] is not None), default=None)
    quarantine: list[dict[str, Any]] = []
    if T.QUARANTINE.qualified in present:
        quarantine = _quarantine(next(answers)[1], next(answers)[1])
    replies = [Answer(q.key, q.title, *next(answers)) for q in asked]
    songplays = present.get(T.SONGPLAYS.qualified)
    snapshot = Snapshot(
        warehouse=settings.warehouse, taken_at=datetime.now(timezone.utc).replace(tzinfo=None),
        tables=[info for t in T.ALL_TABLES if (info := _table_info(t, present.get(t.qualified), counted.get(t.qualified)))],
        runs=runs, quarantine=quarantine, newest_event=songplays.max_values.get("start_time") if songplays else None,
        last_success=last_success, answers=replies, sandboxes=sandboxes,
    )
    snapshot.read_seconds = round(time.perf_counter() - started, 2)
    log.debug("dashboard: read %d tables in %.1fs", len(snapshot.tables), snapshot.read_seconds)
    return snapshot
