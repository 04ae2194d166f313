"""Runs the declared flows (lakehouse.flows.declarations) in order: full from the start, incremental from the watermarks.

Exactly once: a flow reads the Change Data Feed of its inputs from its watermark (the last input version it
absorbed, in `_system/state.json`) and merges on the table's key, so replaying a range after a crash
changes nothing; the watermark moves only after the flow's write is committed. A flow whose inputs did not
change since is skipped without a Spark job (versions come from the Delta log). A flow that never read its
inputs (a new warehouse) takes the rebuild's path: read them whole, write once.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType

from lakehouse import tables as T
from lakehouse.flows import quality
from lakehouse.flows.declarations import flows
from lakehouse.flows.flow import Batch, Flow, InsertNew, ReplaceKeys, Rows, Upsert
from lakehouse.report import RunReport
from lakehouse.session import INTERPRETED, session_settings
from lakehouse.state import PipelineState, StateStore

log = logging.getLogger(__name__)

Status = Callable[[str], contextlib.AbstractContextManager[Any]]
LAYERS = ("silver", "gold")


@contextlib.contextmanager
def no_status(_: str) -> Iterator[None]:
    yield


# Every MERGE source of the runner is persisted first (its bounds, its emptiness and its rows are read more than
# once) and reads pinned table versions (change feeds between two versions, tables at a version) through
# deterministic transforms, so reading it twice gives the same rows. Delta would materialize it once more
# (a Spark job and a copy per MERGE: it treats a change feed or a cached plan as a source that may change).
MERGE_SOURCE_SETTINGS = {
    "spark.databricks.delta.merge.materializeSource": "none",
    # Delta >= 4.1 refuses a source that is cached while materialization is off, unless told it is on purpose.
    "spark.databricks.delta.merge.failSourceCachedAfterMaterialization": "false",
}


def watermark_name(flow: Flow, source: T.Table) -> str:
    return f"{flow.name}<-{source.qualified}"


class FlowRunner:
    """Executes flows for one run: builds each batch, checks quality rules, writes it, moves its watermarks."""

    def __init__(self, wh: T.Warehouse, report: RunReport, state: PipelineState, store: StateStore,
                 rules: list[quality.Rule], status: Status = no_status) -> None:
        self.wh = wh
        self.report = report
        self.state = state
        self.store = store
        self.rules = rules
        self.status = status
        self._source_version = -1

    def run(self, full: bool, declared: tuple[Flow, ...] | None = None, interpreted: bool = False) -> None:
        """Every flow (lakehouse.flows.declarations unless `declared`), layer by layer (timed per layer in the report).

        The flows run with MERGE_SOURCE_SETTINGS, and without generated code when `interpreted` (session.INTERPRETED);
        the session's own values come back afterwards (other commands share it).
        """
        declared = declared or flows()
        self._upgrade_watermarks(declared)
        self.wh.ensure_all(flow.target for flow in declared)  # a flow may read a table built after it (as it stood before this run)
        with session_settings(self.wh.spark, {**MERGE_SOURCE_SETTINGS, **(INTERPRETED if interpreted else {})}):
            for layer in LAYERS:
                with self.report.timed_layer(layer):
                    for flow in declared:
                        if flow.target.layer == layer:
                            self.run_flow(flow, full)

    def run_flow(self, flow: Flow, full: bool) -> None:
        versions = {t.qualified: self.wh.version(t) for t in flow.inputs}
        marks = {t.qualified: self.state.watermark(watermark_name(flow, t)) for t in flow.inputs}
        if not full and all(versions[name] <= marks[name] for name in versions):
            log.debug("%s: inputs unchanged", flow.name)
            return
        if not full and all(mark < 0 for mark in marks.values()):
            # Never read before (a new warehouse, or a flow new to it): all of each input is new, and the
            # rebuild's path reads it whole and writes once, where merging its change feed costs a MERGE.
            log.info("%s: first run, built from its inputs as they stand", flow.name)
            full = True
        started = time.perf_counter()
        self._source_version = versions[flow.inputs[0].qualified]  # quarantine writes are idempotent per input version
        with self.status(f"{flow.name}: {'rebuilding' if full else 'merging changes'}"):
            rows = Rows(self.wh, flow, full, marks, versions)
            try:
                batch = flow.build(rows)
                if batch is not None and full:
                    self._overwrite(flow, batch.rows)
                elif batch is not None:
                    self._merge(flow, batch, rows)
            finally:
                rows.release()
        self.report.flow_seconds[flow.name] = round(time.perf_counter() - started, 2)
        assert self.state.watermarks is not None
        for table in flow.inputs:
            self.state.watermarks[watermark_name(flow, table)] = versions[table.qualified]
        self.store.save(self.state)

    def _upgrade_watermarks(self, flows: tuple[Flow, ...]) -> None:
        """State written before flows had one watermark per layer and source ("silver<-bronze.events_raw").

        Each flow takes its layer's watermark for a source in the layer below; an input in its own layer was
        read in step with it, so it starts from that input's current version.
        """
        marks = self.state.watermarks or {}
        legacy = {k: v for k, v in marks.items() if k.split("<-")[0] in LAYERS}
        if not legacy:
            return
        for flow in flows:
            for table in flow.inputs:
                own_layer = table.layer == flow.target.layer
                mark = self.wh.version(table) if own_layer else legacy.get(f"{flow.target.layer}<-{table.qualified}", -1)
                marks[watermark_name(flow, table)] = mark
        for key in legacy:
            del marks[key]
        self.state.watermarks = marks
        log.info("watermarks upgraded to one per flow and input")

    # ------------------------------------------------------------------ full: overwrite
    def _overwrite(self, flow: Flow, rows: DataFrame) -> None:
        """Rebuild the table from `rows` (those that pass the flow's quality rules; its quarantine rows are replaced).

        Without a `fail` rule the rows are counted while they are written (one pass); with one, they are
        counted first, so a broken `fail` rule leaves the table untouched.
        """
        rules = self._rules(flow)
        if not rules:
            self.report.commits.append(self.wh.overwrite(flow.target, rows))
            return
        flagged = quality.flag(rows, rules)
        if any(r.action == "fail" for r in rules):
            found = quality.counts(flagged, rules)
            quality.enforce(found, rules)
            self.report.commits.append(self.wh.overwrite(flow.target, quality.passing(flagged, rules)))
        else:
            seen = Observation(f"quality-{flow.name}-{uuid.uuid4().hex}")
            observed = flagged.observe(seen, *quality.count_columns(rules))
            self.report.commits.append(self.wh.overwrite(flow.target, quality.passing(observed, rules)))
            found = {name: int(n or 0) for name, n in seen.get.items()}
        self._settle_quality(flow, flagged, rules, found, replace=True)

    # ------------------------------------------------------------------ incremental: merge
    def _merge(self, flow: Flow, batch: Batch, inputs: Rows) -> None:
        cached: list[DataFrame] = []
        try:
            rows = batch.rows.select(*flow.target.schema.fieldNames())
            rules = self._rules(flow)
            if rules:
                flagged = quality.flag(batch.rows, rules).persist()
                cached.append(flagged)
                self._settle_quality(flow, flagged, rules, quality.counts(flagged, rules), replace=False)
                rows = quality.passing(flagged, rules).select(*flow.target.schema.fieldNames())
            strategy = flow.write
            if isinstance(strategy, ReplaceKeys):
                assert batch.scope is not None, f"{flow.name}: a ReplaceKeys flow returns the scope of its rows"
                self._replace_keys(flow, rows, batch.scope, inputs.previous(), cached)
            elif isinstance(strategy, Upsert) and strategy.compare_first:
                self._apply_changes(flow, rows.subtract(inputs.previous()).withColumn("_delete", F.lit(False)), cached)
            else:
                self._merge_rows(flow, rows, strategy, cached)
        finally:
            for df in cached:
                df.unpersist()

    def _merge_rows(self, flow: Flow, rows: DataFrame, strategy: Upsert | InsertNew, cached: list[DataFrame]) -> None:
        """One MERGE on the key; the batch's bounds on `ranges` columns become literals Delta can skip files with.

        A batch with `ranges` (facts: events, plays, times) whose keys the table does not hold yet in those bounds
        (the usual new day) is appended: one write, where a MERGE costs five Spark jobs to find the same.
        """
        rows = rows.persist()
        cached.append(rows)
        condition = [f"t.{c} <=> s.{c}" for c in flow.target.key]
        if strategy.ranges:
            bounds = self._bounds(flow.target, rows, strategy.ranges)
            if bounds is None:
                log.info("%s: no row to merge", flow.name)
                return
            in_bounds = [f"{c} BETWEEN {lo} AND {hi}" for c, (lo, hi) in bounds.items()]
            condition += [f"t.{c}" for c in in_bounds]
            if not self._holds_any(flow.target, rows, " AND ".join(in_bounds)):
                log.info("%s: only new keys, appended", flow.name)
                self.report.commits.append(self.wh.append(flow.target, rows))
                return
        merge = self.wh.delta(flow.target).alias("t").merge(rows.alias("s"), " AND ".join(condition))
        if isinstance(strategy, Upsert):
            differs = " OR ".join(f"NOT (t.{c} <=> s.{c})" for c in flow.target.schema.fieldNames())
            merge = merge.whenMatchedUpdateAll(condition=strategy.when or differs)
        self._execute(flow.target, merge.whenNotMatchedInsertAll())

    def _holds_any(self, table: T.Table, rows: DataFrame, in_bounds: str) -> bool:
        """Whether the table holds a row (within `in_bounds`, SQL) with the key of one of `rows` (NULL keys match NULL)."""
        keys = F.broadcast(rows.select(*[F.col(c).alias(f"_s_{c}") for c in table.key]))
        current = self.wh.read(table, self.wh.version(table)).where(in_bounds)
        return not current.join(keys, [F.col(c).eqNullSafe(F.col(f"_s_{c}")) for c in table.key], "left_semi").isEmpty()

    def _bounds(self, table: T.Table, rows: DataFrame, columns: tuple[str, ...]) -> dict[str, tuple[str, str]] | None:
        """SQL literals of each column's min and max over `rows`; None when there are no rows."""
        types = {f.name: f.dataType for f in table.schema.fields}

        def shown(c: str, agg: Callable[[str], Column]) -> Column:
            value = agg(c)
            return F.date_format(value, "yyyy-MM-dd HH:mm:ss.SSSSSS") if isinstance(types[c], TimestampType) else value.cast("string")

        row = rows.agg(*[shown(c, F.min).alias(f"lo_{c}") for c in columns], *[shown(c, F.max).alias(f"hi_{c}") for c in columns]).head()
        assert row is not None
        if row[f"lo_{columns[0]}"] is None:
            return None

        def literal(c: str, value: str) -> str:
            return f"TIMESTAMP '{value}'" if isinstance(types[c], TimestampType) else value

        return {c: (literal(c, row[f"lo_{c}"]), literal(c, row[f"hi_{c}"])) for c in columns}

    def _replace_keys(self, flow: Flow, rows: DataFrame, scope: DataFrame, previous: DataFrame, cached: list[DataFrame]) -> None:
        """Make the table's rows for the keys in `scope` equal `rows` (insert, update, delete) in one MERGE."""
        existing = previous.join(F.broadcast(scope), scope.columns, "left_semi")
        upserts = rows.subtract(existing).withColumn("_delete", F.lit(False))
        gone = existing.join(rows, list(flow.target.key), "left_anti").withColumn("_delete", F.lit(True))
        self._apply_changes(flow, upserts.unionByName(gone), cached)

    def _apply_changes(self, flow: Flow, changes: DataFrame, cached: list[DataFrame]) -> None:
        """MERGE rows that differ from the table (flagged `_delete` or not); no MERGE, no version, when there are none.

        Most days change few users, artists or levels, and a MERGE costs a dozen Spark jobs even when it changes nothing.
        """
        changes = changes.persist()
        cached.append(changes)
        if changes.isEmpty():
            log.info("%s: no row changed", flow.name)
            return
        table = flow.target
        columns: dict[str, str | Column] = {c: f"s.{c}" for c in table.schema.fieldNames()}
        self._execute(table, (
            self.wh.delta(table).alias("t")
            .merge(changes.alias("s"), " AND ".join(f"t.{c} <=> s.{c}" for c in table.key))
            .whenMatchedDelete(condition="s._delete")
            .whenMatchedUpdate(condition="NOT s._delete", set=columns)
            .whenNotMatchedInsert(condition="NOT s._delete", values=columns)
        ))

    def _execute(self, table: T.Table, merge: Any) -> None:
        """Execute a MERGE; its commit goes into the report only when it made a new version."""
        before = self.wh.version(table)
        merge.execute()
        commit = self.wh.last_commit(table)
        if commit.version > before:
            self.report.commits.append(commit)

    # ------------------------------------------------------------------ quality rules
    def _rules(self, flow: Flow) -> list[quality.Rule]:
        return [r for r in self.rules if flow.quality is not None and r.table == flow.quality]

    def _settle_quality(self, flow: Flow, flagged: DataFrame, rules: list[quality.Rule], found: dict[str, int], replace: bool) -> None:
        """Record rule counts in the run, stop on `fail` rules, write quarantined rows (a rebuild replaces them).

        Quarantine writes happen at most once per (generation, table, input version).
        """
        assert flow.quality is not None
        self.report.quality.update({f"{flow.quality}.{k}": v for k, v in found.items()})
        quality.enforce(found, rules)
        for rule in rules:
            if found[rule.name]:
                log.warning("%s: %d rows break rule %s (%s)", flow.name, found[rule.name], rule.name, rule.action)
        source_version = self._source_version
        app_id = f"{self.state.generation}/quality/{flow.quality}"
        any_quarantined = any(found[r.name] for r in rules if r.action == "quarantine")
        bad = quality.quarantined(flagged, rules, flow.name, self.report.run_id, source_version) if any_quarantined else None
        if replace:
            if replaced := self.wh.replace_quarantine(flow.name, bad, app_id, source_version):
                self.report.commits.append(replaced)
        elif bad is not None:
            self.report.commits.append(self.wh.append(T.QUARANTINE, bad, app_id, source_version))
