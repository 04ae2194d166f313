"""A run of the lakehouse: bronze ingestion, then the declared silver and gold flows, under the run lock.

- bronze (lakehouse.record: ingest, landing): the landing zone listed and compared with what bronze has
  recorded; the new files of a source make one batch, its file list saved before it is written and its
  commits marked with it, so a batch replayed after a crash is read and written once;
- silver and gold (lakehouse.flows.declarations, run by lakehouse.flows.runner): each table declared once, built from the
  Change Data Feed of its inputs since its watermarks (incremental) or from all of them (full);
- every run, failed or not, appends one row to ops.runs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.errors import ConfigError, SourceError
from lakehouse.flows import quality
from lakehouse.flows.runner import FlowRunner, Status, no_status
from lakehouse.operations import catalog
from lakehouse.record import bronze, queue
from lakehouse.record.discovery import Discovery, Found
from lakehouse.record.ingest import Ingest, Source
from lakehouse.record.ingest import sources as ingest_sources
from lakehouse.record.landing import BatchPlan, Compared, LandedIndex, Version
from lakehouse.record.listing import list_landing
from lakehouse.report import RunReport, SourceCounts, log_run, new_run_id
from lakehouse.state import Files, PipelineState, RunLock, StateStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

KINDS = ("incremental", "full")


# spark.codegen = "auto": an incremental run whose bronze took in at most this many rows runs its flows interpreted
# (faster for a day of 400 or 20,000 events, slower for a first run of 100,000: docs/performance.md).
SMALL_RUN_ROWS = 50_000


class Pipeline:
    """One run against one warehouse."""

    def __init__(self, spark: SparkSession, settings: Settings, status: Status | None = None) -> None:
        self.spark = spark
        self.settings = settings
        self.wh = T.Warehouse(spark, settings)
        self.files = Files(spark)
        self.store = StateStore(self.files, settings.system_path)
        self.status: Status = status or no_status
        self.rules = quality.load_rules()
        self.run_id = ""
        self._sqs_client: Any = None

    # ------------------------------------------------------------------ entry point
    def run(self, kind: str, reingest: bool = False, allow_missing_source: bool = False, trigger: str | None = None,
            reconcile: bool = False) -> RunReport:
        """Run `incremental` or `full` under the warehouse's run lock; always appends to ops.runs.

        `full` ingests new files as `incremental` does, then rebuilds silver and gold from bronze.
        With `reingest`, bronze itself is rebuilt from the landing zone first; that stops with a
        SourceError (nothing written) when files bronze holds are gone from it, unless `allow_missing_source`.
        With `reconcile` (`lakehouse reconcile`), discovery also lists the whole landing zone and counts the
        files it had missed (lakehouse.record.discovery); they are ingested with the others.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown run kind {kind!r}; expected one of {KINDS}")
        if reingest and kind != "full":
            raise ConfigError("--reingest goes with `run full`")
        run_id = new_run_id()
        self.run_id = run_id
        has_source = self.check_source(kind)
        lock = RunLock(self.settings.system_path, run_id, kind)
        with lock.held(self.settings.run_lock_wait_seconds):
            state = self.store.load()
            if kind == "incremental" and state.full_in_progress:
                log.warning("Full reprocess %s did not finish: running a full reprocess again", state.full_in_progress)
                kind = "full"
            report = RunReport(run_id, "reconcile" if reconcile and kind == "incremental" else kind, datetime.now(timezone.utc), trigger=trigger)
            log.info("Run %s (%s%s): %s -> %s", run_id, kind, " --reingest" if reingest else "",
                     self.settings.source, self.settings.warehouse)
            ingest = Ingest(self.spark, self.settings, self.wh, self.files, report)
            jobs_before = spark_jobs_started(self.spark)
            try:
                if reingest:
                    with self.status("bronze: comparing the landing zone with what bronze holds"):
                        self._check_reingest(ingest, report, allow_missing_source)
                    state.generation = f"g-{run_id}"
                    state.reingest_phase = "truncate"
                if kind == "full":
                    state.full_in_progress = run_id
                    state.watermarks = {}
                    self.store.save(state)
                with report.timed_layer("bronze"):
                    self.bronze(ingest, state, has_source, reconcile)
                FlowRunner(self.wh, report, state, self.store, self.rules, self.status).run(
                    full=kind == "full", interpreted=self._interpreted(kind, report))
                times = [ms for _, ms, _ in ingest.recorded]
                report.landing_times = (min(times), max(times)) if times else None
                state.full_in_progress = None
                self.store.save(state)
                report.status = "succeeded"
            except BaseException as exc:
                report.status = "failed"
                report.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:1000]
                raise
            finally:
                report.ended_at = datetime.now(timezone.utc)
                jobs_after = spark_jobs_started(self.spark)
                if jobs_before is not None and jobs_after is not None:
                    report.spark_jobs = jobs_after - jobs_before
                self._log_run(report)
        return report

    def _check_reingest(self, ingest: Ingest, report: RunReport, allow_missing_source: bool) -> None:
        """Before anything is written: the files bronze holds must all still be in the landing zone."""
        missing = ingest.missing_from_landing()
        if not missing.files:
            return
        what = (f"{missing.files} file(s) ({missing.rows:,} rows) that bronze holds are no longer in the landing zone "
                f"{self.settings.source}: {', '.join(missing.examples)}" + (" ..." if missing.files > len(missing.examples) else ""))
        if not allow_missing_source:
            raise SourceError(f"run full --reingest would drop {what}. Nothing was written. Rebuild silver and gold from "
                              "bronze with `lakehouse run full` (no --reingest), or add --allow-missing-source to drop them")
        log.warning("--allow-missing-source: bronze drops %s", what)
        report.left_bronze = missing

    def maintain(self, retain_hours: int) -> list[dict[str, Any]]:
        """OPTIMIZE + VACUUM every table under the run lock (never beside a run); logged in ops.runs."""
        run_id = new_run_id()
        report = RunReport(run_id, "maintain", datetime.now(timezone.utc))
        with RunLock(self.settings.system_path, run_id, "maintain").held(self.settings.run_lock_wait_seconds):
            try:
                results = catalog.maintain(self.wh, retain_hours, status=self.status)
                report.commits = [self.wh.last_commit(T.lookup(r["table"])) for r in results]
                report.status = "succeeded"
            except BaseException as exc:
                report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"[:1000]
                raise
            finally:
                report.ended_at = datetime.now(timezone.utc)
                self._log_run(report)
        return results

    def check_source(self, kind: str) -> bool:
        """Fail fast when the landing zone is missing or holds neither song_data nor log_data.

        `full` rebuilds from bronze: a landing zone that has expired entirely is a warning there, when
        the warehouse has bronze tables. Returns whether there is a landing zone to read.
        """
        source = self.settings.source
        try:
            found = [s for s in (bronze.SONGS_SOURCE, bronze.EVENTS_SOURCE) if self.files.exists(f"{source}/{s}")]
            problem = None
            if not found:
                problem = (f"--source {source}: holds neither song_data/ nor log_data/ (is it the landing zone?)"
                           if self.files.exists(source) else f"--source {source}: no such directory or bucket prefix")
        except Exception as exc:
            raise SourceError(f"--source {source}: cannot be read ({str(exc).splitlines()[0][:300]})") from None
        if problem is None:
            return True
        if kind == "full" and any(self.wh.exists(t) for t in (T.EVENTS_RAW, T.SONGS_RAW)):
            log.warning("%s: rebuilding from bronze only", problem)
            return False
        raise SourceError(problem)

    # ------------------------------------------------------------------ bronze
    def bronze(self, ingest: Ingest, state: PipelineState, has_source: bool, reconcile: bool = False) -> None:
        """Ingest new files (a batch per source, a stopped batch replayed first), then files that landed again.

        In queue mode the messages are deleted from the queue only after every commit of bronze.

        After `run full --reingest` bronze is emptied first and ingested again under a new batch
        generation; a run that stops half-way resumes from the phase recorded in the state.
        """
        # A warehouse from before bronze.landed_files: its index starts from what bronze already holds.
        upgrade = not self.wh.exists(T.LANDED_FILES) and any(self.wh.exists(t) for t in (T.SONGS_RAW, T.EVENTS_RAW))
        self.wh.ensure_all((T.SONGS_RAW, T.EVENTS_RAW, T.LANDED_FILES, T.QUARANTINE))
        if upgrade:
            ingest.backfill_landed_files()
        if state.reingest_phase == "truncate":
            with self.status("bronze: emptying bronze before ingesting the landing zone again"):
                ingest.truncate(state.generation)
            state.reingest_phase = "ingest"
            self.store.save(state)
        report = ingest.report
        present = [s for s in ingest_sources() if has_source and self.files.exists(ingest.folder(s))]
        for source in ingest_sources():
            report.sources[source.name] = SourceCounts()
            if source not in present:
                log.warning("bronze: %s has no %s/ folder; nothing to ingest from it", self.settings.source, source.name)
        system = self.settings.system_path
        with self.status(f"bronze: finding what landed ({self.settings.discovery})"):
            index = LandedIndex.load(self.wh, self.files, system)
            found = self._discover(index, state, [s.name for s in present], reconcile)
        new, moved = found.compared.new, found.compared.moved
        report.discovery = found.details(self.settings.source)
        log.info("bronze: %s: %s files listed, %d new, %d landed again%s", found.how, f"{found.figures.get('listed', 0):,}",
                 sum(len(n) for n in new.values()), sum(len(m) for m in moved.values()),
                 f"; requests {found.requests}" if found.requests else "")
        for source in ingest_sources():
            self._new_files(ingest, state, source, new.get(source.name, {}) if source in present else {}, found.in_folder.get(source.name, 0))
        if state.reingest_phase is None and moved:
            with self.status("bronze: reading files that landed again in a new version"):
                for name, counts in ingest.reuploads(index, moved).items():
                    report.sources[name].add(counts)
        index.add(ingest.recorded)
        index.save(self.files, system, self.wh.version(T.LANDED_FILES))
        # Bronze has committed what the queue's messages named: now they may go.
        if found.messages:
            queue.acknowledge(self._sqs(), self.settings.queue_url, found.messages)
            self.files.delete(queue.journal_uri(system))
        if self.settings.discovery == "queue" and present:
            state.discovery["queue"] = self.settings.queue_url
        if found.reconciled:
            state.discovery["reconciled_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        state.reingest_phase = None
        for name, counts in report.sources.items():
            log.info("bronze %-9s %6d files, %8d rows in: %d loaded, %d quarantined",
                     name, counts.files, counts.rows_in, counts.loaded, counts.quarantined)
        for line in report.drift_lines():
            log.warning("%s", line)

    def _interpreted(self, kind: str, report: RunReport) -> bool:
        """Whether the flows run without generated code: `spark.codegen = off`, or `auto` when the run is incremental
        and bronze took in at most SMALL_RUN_ROWS rows."""
        mode = self.settings.spark_codegen
        rows = sum(counts.rows_in for counts in report.sources.values())
        generated = mode == "on" or (mode == "auto" and (kind != "incremental" or rows > SMALL_RUN_ROWS))
        log.info("Flows run %s (spark.codegen = %s, %s rows new in bronze)", "with generated code" if generated else "interpreted",
                 mode, f"{rows:,}")
        return not generated

    def _discover(self, index: LandedIndex, state: PipelineState, names: list[str], reconcile: bool) -> Found:
        """Find what landed (lakehouse.record.discovery); the queue's messages are kept in the journal before anything is written."""
        if not names:
            return Found(Compared(), "nothing to find (no landing zone)")
        system = self.settings.system_path
        queued = self.settings.discovery == "queue"
        journal = queue.loads(self.files.read(queue.journal_uri(system)), self.settings.queue_url) if queued else []
        if journal:
            log.info("bronze: %d message(s) of a run that stopped before deleting them: their events are read again", len(journal))
        discovery = Discovery(self.settings, index, names, state.discovery, sqs=self._sqs() if queued else None)
        found = discovery.run(reconcile=reconcile, journal=journal, list_all=state.reingest_phase is not None)
        if found.messages:
            self.files.write(queue.journal_uri(system), queue.dumps(self.settings.queue_url, self.run_id, found.messages))
        return found

    def _sqs(self) -> Any:
        if self._sqs_client is None:
            from lakehouse.storage import sqs_client

            self._sqs_client = sqs_client()
        return self._sqs_client

    def arrivals(self) -> int:
        """Files a run would read now (new, or landed again), as a run finds them; takes no lock and writes nothing.

        The watch mode asks it between runs. In queue mode: the messages waiting (none are received, so a run
        still finds them); else the landing zone listed (lakehouse.record.listing) and compared with the index.
        """
        self.check_source("incremental")
        if self.settings.discovery == "queue":
            return queue.waiting(self._sqs(), self.settings.queue_url)
        names = [s.name for s in ingest_sources()]
        compared = LandedIndex.load(self.wh, self.files, self.settings.system_path).compare(list_landing(self.settings.source, names))
        return len(compared.paths())

    def _new_files(self, ingest: Ingest, state: PipelineState, source: Source, new: dict[str, Version], in_folder: int) -> None:
        """Replay the source's stopped batch, if any, then land its `new` files as the next batch.

        Order, for a run killed at any point: batch number saved, plan saved, commits (each marked with
        the batch, so a replay skips it), then the batch number marked complete in the state.
        """
        app_id = ingest.app_id(source, state.generation)
        system = self.settings.system_path
        done = state.bronze_batches.get(app_id)
        if done is None:
            if not new and not self.files.exists(BatchPlan.uri(system, app_id)):
                return
            done = state.bronze_batches[app_id] = ingest.last_batch(source)
            self.store.save(state)
        pending = BatchPlan.pending(self.files, system, app_id, done)
        plans = [pending] if pending else []
        fresh = {path: ms for path, ms in new.items() if pending is None or path not in pending.files}
        if fresh:
            versions = {t.qualified: self.wh.version(t) for t in (source.table, T.LANDED_FILES, T.QUARANTINE)}
            plans.append(BatchPlan(app_id, (pending.batch if pending else done) + 1, fresh, versions))
        for plan in plans:
            again = " again (a run stopped before it was complete)" if plan is pending else ""
            with self.status(f"bronze: reading {len(plan.files):,} {source.name} files, batch {plan.batch}{again}"):
                plan.save(self.files, system)
                counts = ingest.read_batch(source, plan, in_folder)
            log.info("bronze %s: batch %d written%s (%d files, %d rows)", source.name, plan.batch, again, counts.files, counts.rows_in)
            ingest.report.sources[source.name].add(counts)
            state.bronze_batches[app_id] = plan.batch
            self.store.save(state)

    def _log_run(self, report: RunReport) -> None:
        log_run(self.wh, report)


def spark_jobs_started(spark: SparkSession) -> int | None:
    """Spark jobs the session has started so far (the scheduler's next job id); None when it cannot be read."""
    try:
        return int(spark.sparkContext._jsc.sc().dagScheduler().nextJobId())  # type: ignore[union-attr]
    except Exception:  # an internal API: the count is a figure for operators, never a reason to fail
        return None


def check_local_source(source: str, warehouse: str | None = None) -> None:
    """Before Spark starts: a local landing zone must exist and hold song_data/ or log_data/.

    With `warehouse` (a `run full`, which rebuilds from bronze), a local warehouse with bronze tables
    makes a missing landing zone acceptable: the run warns and rebuilds from bronze.
    """
    if not source.startswith("file:"):
        return
    path = Path(source[len("file:"):])
    if any((path / s).is_dir() for s in (bronze.SONGS_SOURCE, bronze.EVENTS_SOURCE)):
        return
    if warehouse is not None and warehouse.startswith("file:"):
        root = Path(warehouse[len("file:"):])
        if any((root / t.layer / t.name / "_delta_log").is_dir() for t in (T.EVENTS_RAW, T.SONGS_RAW)):
            return
    if not path.is_dir():
        raise SourceError(f"--source {source}: no such directory")
    raise SourceError(f"--source {source}: holds neither song_data/ nor log_data/ (is it the landing zone?)")
