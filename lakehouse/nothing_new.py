"""`run incremental` when nothing landed: told and logged without starting Spark.

A daily run with nothing new starts no Spark job, but its JVM and session still cost about seven seconds on two
cores, every time a scheduler or a crontab asks. Before Spark starts, under the run lock, `check` answers from
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
from datetime import datetime, timezone

from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.record.ingest import Ingest, sources
from lakehouse.record.landing import BatchPlan
from lakehouse.record.pending import COMMIT_FILE, WarehouseFiles, pending
from lakehouse.report import RunReport, SourceCounts, run_row
from lakehouse.state import RunLock

log = logging.getLogger(__name__)

def new_run_id() -> str:
    import uuid

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


def commits(files: WarehouseFiles, table: T.Table) -> list[int]:
    """The versions of the table's commit files (empty: no table)."""
    names = files.names(f"{table.layer}/{table.name}/_delta_log")
    return sorted(int(m.group(1)) for n in names if (m := COMMIT_FILE.match(n)))


def work_to_do(settings: Settings) -> str | None:
    """Why a run has work to do (the first reason found), or None: nothing landed and every flow is up to date.
    Told without Spark (see the module's docstring); reads only."""
    return _check(settings)[0]


def _check(settings: Settings) -> tuple[str | None, int]:
    """(why a run has work to do or None, how many landed files the listing saw)."""
    from lakehouse.flows.declarations import flows

    files = WarehouseFiles(settings.warehouse)
    if settings.discovery != "list" or settings.listing_date_bounded:
        return f"discovery = {settings.discovery}{' (date-bounded)' if settings.listing_date_bounded else ''}", 0
    text = files.read("_system/state.json")
    if not text:
        return "no state: a new warehouse", 0
    state = json.loads(text)
    if state.get("full_in_progress") or state.get("reingest_phase"):
        return "a full run did not finish", 0
    generation = state.get("generation", "g0")
    done = state.get("bronze_batches", {})
    for source in sources():
        app_id = Ingest.app_id(source, generation)
        plan = files.read(BatchPlan.uri("_system", app_id))
        if plan and int(json.loads(plan)["batch"]) > int(done.get(app_id, -1)):
            return f"{source.table.qualified}: a batch a stopped run left", 0
    found = pending(settings)
    listed = found.listed
    if found.stale:
        return "bronze.landed_files changed since its copy", 0
    if found.files:
        return f"{len(found.files)} landed file(s) pending", 0
    watermarks = state.get("watermarks") or {}
    versions: dict[str, int] = {}
    for flow in flows():
        for table in (flow.target, *flow.inputs):
            if table.qualified not in versions:
                found_versions = commits(files, table)
                versions[table.qualified] = found_versions[-1] if found_versions else -1
        if versions[flow.target.qualified] < 0:
            return f"{flow.target.qualified} does not exist", 0
        for table in flow.inputs:
            mark = watermarks.get(f"{flow.name}<-{table.qualified}", -1)
            if versions[table.qualified] > mark:
                return f"{flow.name}: {table.qualified} version {versions[table.qualified]} not absorbed (at {mark})", 0
    if not commits(files, T.RUNS):
        return "no ops.runs table", 0
    return None, listed


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
            reason, listed = _check(settings)
        except Exception as exc:  # a listing or a read that failed: the run in Spark says what is wrong
            log.debug("nothing-new check failed: %s", exc, exc_info=True)
            return None
        if reason is not None:
            log.info("work to do (%s): starting Spark", reason)
            return None
        report = RunReport(run_id, "incremental", started)
        report.sources = {source.name: SourceCounts() for source in sources()}
        report.layer_seconds = {"bronze": round(time.perf_counter() - clock, 2), "silver": 0.0, "gold": 0.0}
        # A plain listing is a reconciliation too, as in a run in Spark; it found nothing.
        report.discovery = {"how": "list", "listed": listed, "reconcile": {"missed": 0, "files": []},
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
