"""`run incremental` when nothing landed: told and logged without starting Spark.

A daily run with nothing new starts no Spark job, but its JVM and session still cost about seven seconds on two
cores, every time a scheduler or a crontab asks. Before Spark starts, under the run lock, `work_to_do` answers from
the warehouse's own small files and the landing zone's listing (no JVM):
- the state (`_system/state.json`): no `full` or `--reingest` in progress;
- bronze: no file pending (lakehouse.record.pending: the listing a run makes, against `bronze.landed_files`' copy,
  which must be current), and no batch plan a stopped run left incomplete;
- silver and gold: every flow has absorbed every commit of its inputs (its watermarks against the commit files
  in each input's `_delta_log`), and every table the flows write exists.
When all hold, the run writes nothing but its row in ops.runs (through delta-rs) and ends. When any does not,
or the discovery is not a plain listing (a queue to drain, a date-bounded listing that reconciles now and then),
the answer is None and the run goes on as always, in Spark, which takes the lock again.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.flows.declarations import flows
from lakehouse.flows.runner import watermark_name
from lakehouse.record.ingest import Ingest, sources
from lakehouse.record.landing import BatchPlan
from lakehouse.record.pending import WarehouseFiles, pending
from lakehouse.report import RunReport, SourceCounts, new_run_id, run_row
from lakehouse.state import RunLock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    """Why a run has work to do (None: nothing), and how many landed files the listing saw."""

    reason: str | None
    listed: int = 0


def work_to_do(settings: Settings) -> str | None:
    """Why a run has work to do (the first reason found), or None: nothing landed and every flow is up to date.
    Told without Spark (see the module's docstring); reads only."""
    return _check(settings).reason


def _check(settings: Settings) -> Check:
    files = WarehouseFiles(settings.warehouse)
    if settings.discovery != "list" or settings.listing_date_bounded:
        return Check(f"discovery = {settings.discovery}{' (date-bounded)' if settings.listing_date_bounded else ''}")
    text = files.read("_system/state.json")
    if not text:
        return Check("no state: a new warehouse")
    state = json.loads(text)
    if state.get("full_in_progress") or state.get("reingest_phase"):
        return Check("a full run did not finish")
    generation = state.get("generation", "g0")
    done = state.get("bronze_batches", {})
    for source in sources():
        app_id = Ingest.app_id(source, generation)
        plan = files.read(BatchPlan.uri("_system", app_id))
        if plan and int(json.loads(plan)["batch"]) > int(done.get(app_id, -1)):
            return Check(f"{source.table.qualified}: a batch a stopped run left")
    found = pending(settings)
    if found.stale:
        return Check("bronze.landed_files changed since its copy")
    if found.files:
        return Check(f"{len(found.files)} landed file(s) pending")
    watermarks = state.get("watermarks") or {}
    versions: dict[str, int] = {}

    def version(table: T.Table) -> int:
        if table.qualified not in versions:
            versions[table.qualified] = (files.commits(f"{table.layer}/{table.name}") or [-1])[-1]
        return versions[table.qualified]

    for flow in flows():
        if version(flow.target) < 0:
            return Check(f"{flow.target.qualified} does not exist")
        for table in flow.inputs:
            mark = watermarks.get(watermark_name(flow, table), -1)
            if version(table) > mark:
                return Check(f"{flow.name}: {table.qualified} version {version(table)} not absorbed (at {mark})")
    if version(T.RUNS) < 0:
        return Check("no ops.runs table")
    return Check(None, found.listed)


def run_if_nothing_new(settings: Settings) -> RunReport | None:
    """The report of an incremental run that had nothing to do, logged in ops.runs without Spark; None when there is work
    (or when the check could not tell: the run then goes on in Spark, which reports any real problem)."""
    from lakehouse import deltalog

    run_id = new_run_id()
    started = datetime.now(timezone.utc)
    clock = time.perf_counter()
    try:
        if WarehouseFiles(settings.warehouse).read("_system/state.json") is None:
            return None  # a new warehouse (and no lock file is made for it here)
    except Exception as exc:  # the run in Spark says what is wrong
        log.debug("nothing-new check failed: %s", exc, exc_info=True)
        return None
    with RunLock(settings.system_path, run_id, "incremental").held(settings.run_lock_wait_seconds):
        try:
            found = _check(settings)
        except Exception as exc:  # a listing or a read that failed: the run in Spark says what is wrong
            log.debug("nothing-new check failed: %s", exc, exc_info=True)
            return None
        if found.reason is not None:
            log.info("work to do (%s): starting Spark", found.reason)
            return None
        report = RunReport(run_id, "incremental", started)
        report.sources = {source.name: SourceCounts() for source in sources()}
        report.layer_seconds = {"bronze": round(time.perf_counter() - clock, 2), "silver": 0.0, "gold": 0.0}
        # A plain listing is a reconciliation too, as in a run in Spark; it found nothing.
        report.discovery = {"how": "list", "listed": found.listed, "reconcile": {"missed": 0, "files": []},
                            "spark": "not started: nothing landed and every flow is up to date"}
        report.spark_jobs = 0
        report.status = "succeeded"
        report.ended_at = datetime.now(timezone.utc)
        try:
            deltalog.append(settings.table_path(T.RUNS.layer, T.RUNS.name), [run_row(report)])
        except Exception as exc:  # e.g. a table feature delta-rs cannot write: Spark's run logs it instead
            log.warning("nothing new, but ops.runs could not be written without Spark (%s): starting Spark", exc)
            return None
    log.info("Run %s (incremental): nothing landed in %s and silver and gold are up to date; Spark not started",
             run_id, settings.source)
    return report
