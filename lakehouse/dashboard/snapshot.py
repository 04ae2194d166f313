"""What the dashboard shows: what the warehouse knows about itself, read once (Delta detail and history,
ops.runs, bronze.quarantine, the analytics answers) into plain data for lakehouse.dashboard.site to render."""

from __future__ import annotations

import json
import logging
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from lakehouse import tables as T
from lakehouse.dashboard.sandboxes import SandboxTable, sandbox_tables
from lakehouse.sql import questions

log = logging.getLogger(__name__)
HISTORY_VERSIONS = 8
QUARANTINE_REASONS = 20
SAMPLES_PER_REASON = 3
SAMPLE_CHARS = 300
RUNS_SHOWN = 30
READ_THREADS = 4


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


def _table_info(wh: T.Warehouse, table: T.Table) -> TableInfo | None:
    """The table's figures, or None when it does not exist (yet)."""
    from delta.tables import DeltaTable

    if not wh.exists(table):
        return None
    delta = DeltaTable.forPath(wh.spark, wh.path(table))
    detail = delta.detail().head().asDict()  # type: ignore[union-attr]
    history = [
        {"version": int(r.version), "timestamp": r.timestamp, "operation": r.operation,
         "rows_written": _rows_written(r.operation, r.operationMetrics)}
        for r in delta.history(HISTORY_VERSIONS).select("version", "timestamp", "operation", "operationMetrics").collect()
    ]
    df = delta.toDF()
    columns = [(f.name, f.dataType.simpleString(), str(f.metadata.get("comment", ""))) for f in df.schema.fields]
    return TableInfo(
        name=table.qualified, layer=table.layer, grain=detail.get("description") or table.comment,
        rows=int(df.count()), version=history[0]["version"] if history else -1, last_write=detail.get("lastModified"),
        files=int(detail.get("numFiles") or 0), size_bytes=int(detail.get("sizeInBytes") or 0),
        partition_by=list(detail.get("partitionColumns") or []), features=sorted(detail.get("tableFeatures") or []),
        properties={str(k): str(v) for k, v in (detail.get("properties") or {}).items()},
        columns=columns, history=history,
    )


def _quarantine(wh: T.Warehouse) -> list[dict[str, Any]]:
    """Quarantined rows per (source, reason), most first, with a few raw samples (truncated)."""
    if not wh.exists(T.QUARANTINE):
        return []
    wh.read(T.QUARANTINE).createOrReplaceTempView("_dash_quarantine")
    rows = wh.spark.sql(f"""
        SELECT source, reason, count(*) AS n,
               slice(collect_list(substring(raw, 1, {SAMPLE_CHARS + 1})), 1, {SAMPLES_PER_REASON}) AS samples
        FROM _dash_quarantine GROUP BY source, reason ORDER BY n DESC, source, reason LIMIT {QUARANTINE_REASONS}
    """).collect()
    return [
        {"source": r.source, "reason": r.reason, "rows": int(r.n),
         "samples": [s if len(s) <= SAMPLE_CHARS else s[:SAMPLE_CHARS] + "…" for s in (r.samples or []) if s is not None]}
        for r in rows
    ]


def _answers(wh: T.Warehouse) -> list[Answer]:
    if not all(wh.exists(t) for t in T.GOLD_TABLES):
        return []
    wh.register(T.GOLD_TABLES)
    answers = []
    for question in questions():
        df = wh.spark.sql(question.query)
        answers.append(Answer(question.key, question.title, df.columns, [r.asDict() for r in df.collect()]))
    return answers


def collect(wh: T.Warehouse) -> Snapshot:
    """Read everything the dashboard shows; tables are read READ_THREADS at a time (mostly driver work)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="dashboard") as pool:
        infos = [pool.submit(_table_info, wh, t) for t in T.ALL_TABLES]
        quarantine = pool.submit(_quarantine, wh)
        answers = pool.submit(_answers, wh)
        sandboxes = pool.submit(sandbox_tables, wh)
        runs: list[Run] = []
        if wh.exists(T.RUNS):
            recent = wh.read(T.RUNS).orderBy("started_at", ascending=False).limit(RUNS_SHOWN).collect()
            runs = sorted((parse_run(r.asDict()) for r in recent), key=lambda r: r.started_at or datetime.min)
        newest = None
        if wh.exists(T.SONGPLAYS):
            newest = wh.read(T.SONGPLAYS).agg({"start_time": "max"}).head()[0]  # type: ignore[index]
        ended = [r for r in (wh.read(T.RUNS).where("status = 'succeeded'").agg({"ended_at": "max"}).collect()
                             if wh.exists(T.RUNS) else [])]
        snapshot = Snapshot(
            warehouse=wh.settings.warehouse, taken_at=datetime.now(timezone.utc).replace(tzinfo=None),
            tables=[info for info in (f.result() for f in infos) if info is not None], runs=runs, quarantine=quarantine.result(), newest_event=newest,
            last_success=ended[0][0] if ended else None, answers=answers.result(), sandboxes=sandboxes.result(),
        )
    snapshot.read_seconds = round(time.perf_counter() - started, 2)
    log.debug("dashboard: read %d tables in %.1fs", len(snapshot.tables), snapshot.read_seconds)
    return snapshot
