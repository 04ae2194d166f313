"""`lakehouse forget`: erase users from every layer in one run, under the run lock, logged in ops.runs.

One run: the ids join the erasure list (`ops.forgotten_users`) first, so that even a run that stops half-way
keeps their later data out; then their rows are deleted from bronze (events and quarantine), silver and gold
(gold.time: the start times only their plays used); the flows' watermarks that stood at the tables' versions
before the run move past the deletes, so the next incremental run has nothing to redo. With `purge`, old
versions go too (lakehouse.operations.purge). Nothing about a user but the id is written anywhere.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from lakehouse import erasure
from lakehouse import tables as T
from lakehouse.errors import ConfigError
from lakehouse.flows.declarations import flows
from lakehouse.flows.runner import Status, no_status, watermark_name
from lakehouse.operations import purge
from lakehouse.report import RunReport, log_run, new_run_id
from lakehouse.state import Files, PipelineState, RunLock, StateStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.config import Settings

log = logging.getLogger(__name__)
SHOWN_IDS = 10  # ids named in the summary; the rest are counted

FORGET_THREADS = 3  # tables counted and erased at once (as maintain: mostly driver work)


@dataclass
class ForgetResult:
    """What `forget` did (or, with dry_run, would do): rows per table, ids with no rows, what was purged."""

    ids: list[int]
    dry_run: bool
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows removed (dry run: that would be)
    without_rows: list[int] = field(default_factory=list)  # ids with no row in any table
    listed_before: list[int] = field(default_factory=list)  # ids already on the erasure list
    purged: dict[str, int] = field(default_factory=dict)  # table -> first version still readable
    seconds: float = 0.0
    purge_seconds: float = 0.0
    run_id: str | None = None

    def lines(self) -> list[str]:
        """The operator's summary, without names (ids and counts only)."""
        verb = "would remove" if self.dry_run else "removed"
        out = [f"{name}: {verb} {n:,} rows" for name, n in self.rows.items()]
        fresh = [uid for uid in self.without_rows if uid not in self.listed_before]
        for uid in fresh[:SHOWN_IDS]:
            out.append(f"user {uid}: no rows anywhere; " + ("would be" if self.dry_run else "is")
                       + " on the erasure list, so later data for it is dropped")
        if len(fresh) > SHOWN_IDS:
            out.append(f"... and {len(fresh) - SHOWN_IDS} more ids with no rows anywhere")
        listed = [uid for uid in self.without_rows if uid in self.listed_before]
        if listed:
            out.append(f"{len(listed)} id(s) already on the erasure list had no rows left: "
                       + ", ".join(map(str, listed[:SHOWN_IDS])) + (" ..." if len(listed) > SHOWN_IDS else ""))
        if self.dry_run:
            out.append("dry run: nothing was written")
            return out
        out.append(f"forget took {self.seconds:.1f}s (run {self.run_id}, in ops.runs)")
        if self.purged:
            out.append(f"purge took {self.purge_seconds:.1f}s: old files vacuumed (retention 0), Delta log truncated")
            out.append("cost: time travel before these versions is gone (VERSION AS OF, restore, changes): "
                       + ", ".join(f"{t} < {v}" for t, v in self.purged.items()))
        else:
            out.append("old table versions still hold these rows (time travel): `lakehouse forget ... --purge` or "
                       "`lakehouse maintain --purge-forgotten` makes them unreadable")
        return out


class Eraser:
    """Erases users from one warehouse."""

    def __init__(self, spark: SparkSession, settings: Settings, status: Status | None = None) -> None:
        self.spark = spark
        self.settings = settings
        self.wh = T.Warehouse(spark, settings)
        self.store = StateStore(Files(spark), settings.system_path)
        self.status: Status = status or no_status

    def run(self, ids: list[int], purge_old: bool = False, dry_run: bool = False) -> ForgetResult:
        """Forget `ids` (sorted, distinct); with `purge_old`, also in old versions; with `dry_run`, count only."""
        result = ForgetResult(ids, dry_run, listed_before=[i for i in ids if i in erasure.Forgotten(self.wh).ids()])
        if dry_run:
            with self.status("forget: counting rows (dry run)"):
                self._count(ids, result)
            return result
        run_id = new_run_id()
        result.run_id = run_id
        report = RunReport(run_id, "forget", datetime.now(timezone.utc))
        with RunLock(self.settings.system_path, run_id, "forget").held(self.settings.run_lock_wait_seconds):
            state = self.store.load()
            self._check_state(state, purge_old)
            started = time.perf_counter()
            try:
                self._forget(ids, result, report, state)
                result.seconds = round(time.perf_counter() - started, 2)
                if purge_old:
                    self._purge(result, report, state)
                report.status = "succeeded"
            except BaseException as exc:
                report.status, report.error = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:1000]
                raise
            finally:
                report.erasure = {"user_ids": ids, "rows_removed": result.rows, "ids_without_rows": result.without_rows,
                                  "purged": result.purged, "forget_seconds": result.seconds, "purge_seconds": result.purge_seconds}
                report.ended_at = datetime.now(timezone.utc)
                self._log_run(report)
        return result

    # ------------------------------------------------------------------ steps
    def _check_state(self, state: PipelineState, purge_old: bool) -> None:
        """Refuse (nothing written) beside an unfinished full run; a purge also needs every flow caught up.

        A purge removes the versions a lagging watermark would read its changes from. A watermark behind
        commits that change no row (OPTIMIZE, VACUUM, table properties: `maintain`) moves up to the current version.
        """
        if state.full_in_progress or state.reingest_phase:
            raise ConfigError("a full run did not finish: run `lakehouse run incremental` (it finishes it), then forget. Nothing was written")
        if not purge_old:
            return
        behind = []
        marks = state.watermarks if state.watermarks is not None else {}
        for flow in flows():
            for table in flow.inputs:
                name, version = watermark_name(flow, table), self.wh.version(table)
                mark = state.watermark(name)
                if version <= mark:
                    continue
                if mark >= 0 and self.wh.changes(table, mark, version).isEmpty():
                    marks[name] = version
                else:
                    behind.append(name)
        if behind:
            raise ConfigError(f"--purge: flows have changes still to read ({', '.join(behind[:3])}); run `lakehouse run incremental` "
                              "first, then purge (`lakehouse maintain --purge-forgotten`). Nothing was written")
        state.watermarks = marks
        self.store.save(state)

    def _count(self, ids: list[int], result: ForgetResult) -> tuple[dict[str, list[int]], list[datetime]]:
        """Rows per table that belong to `ids` (and which ids have any); gold.time's orphan start times."""
        found: set[int] = set()
        per_table: dict[str, list[int]] = {}

        def count(table: T.Table) -> list[Any]:
            return (self.wh.read(table).where(erasure.belongs_to(table, ids))
                    .groupBy(erasure.user_id_of(table).alias("user_id")).count().collect())

        tables = [t for t in erasure.ERASED_TABLES if t is not T.TIME and self.wh.exists(t)]
        with ThreadPoolExecutor(FORGET_THREADS, thread_name_prefix="forget") as pool:
            counted = list(pool.map(count, tables))
        for table, rows in zip(tables, counted, strict=True):
            result.rows[table.qualified] = sum(int(r["count"]) for r in rows)
            per_table[table.qualified] = [int(r["user_id"]) for r in rows]
            found.update(per_table[table.qualified])
        orphans = []
        if self.wh.exists(T.TIME) and self.wh.exists(T.SONGPLAYS):
            orphans = [r[0] for r in erasure.orphan_times(self.wh.read(T.SONGPLAYS), ids).collect()]
            result.rows[T.TIME.qualified] = len(orphans)
        result.without_rows = [i for i in ids if i not in found]
        return per_table, orphans

    def _forget(self, ids: list[int], result: ForgetResult, report: RunReport, state: PipelineState) -> None:
        before = {t.qualified: self.wh.version(t) for t in T.ALL_TABLES}
        new = [i for i in ids if i not in result.listed_before]
        if new:
            at = datetime.now(timezone.utc).replace(tzinfo=None)
            rows = self.spark.createDataFrame([(i, at, report.run_id) for i in new], T.FORGOTTEN.schema)
            report.commits.append(self.wh.append(T.FORGOTTEN, rows))
        with self.status("forget: finding their rows"):
            _, orphans = self._count(ids, result)
        planned, result.rows = result.rows, {name: 0 for name in result.rows}  # rows removed so far (a failed run logs what it did)

        def delete(table: T.Table) -> None:
            purge.exclude_personal_stats(self.wh, table)  # the rewritten files' statistics hold no personal values
            if table is T.TIME:
                times = self.spark.createDataFrame([(t,) for t in orphans], "start_time timestamp")
                (self.wh.delta(T.TIME).alias("t").merge(times.alias("s"), "t.start_time = s.start_time")
                 .whenMatchedDelete().execute())
            else:
                self.wh.delta(table).delete(erasure.belongs_to(table, ids))
            commit = self.wh.last_commit(table)
            report.commits.append(commit)
            metrics = commit.metrics
            done = int(metrics.get("numDeletedRows", metrics.get("numTargetRowsDeleted", planned[table.qualified])))
            result.rows[table.qualified] = done
            log.info("forget: %s: %d rows removed (version %d)", table.qualified, done, commit.version)

        # Each table is its own Delta transaction, and each DELETE mostly waits on the driver: a few at a time.
        todo = [t for t in erasure.ERASED_TABLES if planned.get(t.qualified)]
        with self.status(f"forget: deleting from {len(todo)} tables"), ThreadPoolExecutor(FORGET_THREADS, thread_name_prefix="forget") as pool:
            list(pool.map(delete, todo))
        self._advance_watermarks(state, before)

    def _purge(self, result: ForgetResult, report: RunReport, state: PipelineState) -> None:
        before = {t.qualified: self.wh.version(t) for t in T.ALL_TABLES}
        started = time.perf_counter()
        tables = [t for t in erasure.ERASED_TABLES if self.wh.exists(t)]
        with self.status(f"purge: rewriting, vacuuming (retention 0) and truncating the log of {len(tables)} tables"):
            result.purged = purge.purge(self.wh, tables)
        result.purge_seconds = round(time.perf_counter() - started, 2)
        report.commits += [self.wh.last_commit(t) for t in tables]
        self._advance_watermarks(state, before)

    def _advance_watermarks(self, state: PipelineState, before: dict[str, int]) -> None:
        """Watermarks that had read every version before this run move past its commits (deletes: nothing to redo)."""
        marks = state.watermarks or {}
        for name, mark in marks.items():
            source = name.split("<-", 1)[-1]
            if source in before and mark == before[source]:
                marks[name] = self.wh.version(T.lookup(source))
        state.watermarks = marks
        self.store.save(state)

    def _log_run(self, report: RunReport) -> None:
        log_run(self.wh, report)
