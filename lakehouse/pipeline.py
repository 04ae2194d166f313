"""Orchestration: bronze -> silver -> gold for `incremental` and `full` runs, with the run log.

Reads, calls the pure transforms of bronze/silver/gold, writes through tables.Warehouse. Nothing else
in the package decides what a run does.

Exactly once:
- bronze: a file stream (availableNow) with a checkpoint lists only files not seen before; each
  micro-batch writes with txnAppId/txnVersion, so a replayed batch is not written twice;
- silver and gold read the Change Data Feed of the layer below from a watermark (the last source
  version absorbed, in `_system/state.json`) and MERGE on natural keys, so replaying a range after a
  crash changes nothing; the watermark moves only after the layer's writes are committed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from lakehouse import bronze, gold, quality, silver
from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.errors import ConfigError, SourceError
from lakehouse.ingest import Ingest
from lakehouse.ingest import sources as ingest_sources
from lakehouse.report import RunReport, SourceCounts
from lakehouse.state import Files, PipelineState, RunLock, StateStore

if TYPE_CHECKING:
    from delta.tables import DeltaMergeBuilder
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

KINDS = ("incremental", "full")


Status = Callable[[str], contextlib.AbstractContextManager[Any]]


@contextlib.contextmanager
def _no_status(_: str) -> Iterator[None]:
    yield


class Pipeline:
    """One run against one warehouse."""

    def __init__(self, spark: SparkSession, settings: Settings, status: Status | None = None) -> None:
        self.spark = spark
        self.settings = settings
        self.wh = T.Warehouse(spark, settings)
        self.files = Files(spark)
        self.store = StateStore(self.files, settings.system_path)
        self.status: Status = status or _no_status
        self.rules = quality.load_rules()

    # ------------------------------------------------------------------ entry point
    def run(self, kind: str, reingest: bool = False, allow_missing_source: bool = False) -> RunReport:
        """Run `incremental` or `full` under the warehouse's run lock; always appends to ops.runs.

        `full` ingests new files as `incremental` does, then rebuilds silver and gold from bronze.
        With `reingest`, bronze itself is rebuilt from the landing zone first; that stops with a
        SourceError (nothing written) when files bronze holds are gone from it, unless `allow_missing_source`.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown run kind {kind!r}; expected one of {KINDS}")
        if reingest and kind != "full":
            raise ConfigError("--reingest goes with `run full`")
        run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
        has_source = self.check_source(kind)
        lock = RunLock(self.settings.system_path, run_id, kind)
        with lock.held(self.settings.run_lock_wait_seconds):
            state = self.store.load()
            if kind == "incremental" and state.full_in_progress:
                log.warning("Full reprocess %s did not finish: running a full reprocess again", state.full_in_progress)
                kind = "full"
            report = RunReport(run_id, kind, datetime.now(timezone.utc))
            log.info("Run %s (%s%s): %s -> %s", run_id, kind, " --reingest" if reingest else "",
                     self.settings.source, self.settings.warehouse)
            ingest = Ingest(self.spark, self.settings, self.wh, self.files, report)
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
                full = kind == "full"
                self._timed(report, "bronze", lambda: self.bronze(ingest, state, has_source))
                self._timed(report, "silver", lambda: self.silver(report, state, full=full))
                self._timed(report, "gold", lambda: self.gold(report, state, full=full))
                state.full_in_progress = None
                self.store.save(state)
                report.status = "succeeded"
            except BaseException as exc:
                report.status = "failed"
                report.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:1000]
                raise
            finally:
                report.ended_at = datetime.now(timezone.utc)
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
        from lakehouse import catalog

        run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]
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

    def _timed(self, report: RunReport, layer: str, step: Callable[[], None]) -> None:
        started = time.perf_counter()
        step()
        report.layer_seconds[layer] = round(time.perf_counter() - started, 2)
        log.info("%s done in %.1fs", layer, report.layer_seconds[layer])

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
    def bronze(self, ingest: Ingest, state: PipelineState, has_source: bool) -> None:
        """Ingest new files (both file streams at once), then files that landed again with new content.

        After `run full --reingest` bronze is emptied first and ingested again under a new checkpoint
        generation; a run that stops half-way resumes from the phase recorded in the state.
        """
        # A warehouse from before bronze.landed_files: its index starts from what bronze already holds.
        upgrade = not self.wh.exists(T.LANDED_FILES) and any(self.wh.exists(t) for t in (T.SONGS_RAW, T.EVENTS_RAW))
        for table in (T.SONGS_RAW, T.EVENTS_RAW, T.LANDED_FILES, T.QUARANTINE):
            self.wh.ensure(table)
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
        started: list[tuple[str, StreamingQuery]] = []
        try:
            for source in present:
                started.append((source.name, ingest.start_stream(source, state.generation, report.sources[source.name])))
            with self.status(f"bronze: reading new {' and '.join(name for name, _ in started)} files"):
                for _, query in started:
                    query.awaitTermination()
        finally:
            for _, query in started:
                if query.isActive:
                    query.stop()
        if state.reingest_phase is None:
            with self.status("bronze: looking for files that landed again with new content"):
                for name, counts in ingest.reuploads(present).items():
                    report.sources[name].add(counts)
        state.reingest_phase = None
        for name, counts in report.sources.items():
            log.info("bronze %-9s %6d files, %8d rows in: %d loaded, %d quarantined",
                     name, counts.files, counts.rows_in, counts.loaded, counts.quarantined)
        for line in report.drift_lines():
            log.warning("%s", line)

    # ------------------------------------------------------------------ silver
    def silver(self, report: RunReport, state: PipelineState, full: bool) -> None:
        for table in (T.EVENTS, T.USERS, T.USER_LEVELS, T.SONGS, T.ARTISTS):
            self.wh.ensure(table)
        events_v, songs_v = self.wh.version(T.EVENTS_RAW), self.wh.version(T.SONGS_RAW)
        if full:
            with self.status("silver: rebuilding from bronze"):
                self._overwrite_checked(report, "events", silver.clean_events(self.wh.read(T.EVENTS_RAW)), T.EVENTS, state, events_v)
                all_events = self.wh.read(T.EVENTS)
                report.commits.append(self.wh.overwrite(T.USERS, silver.latest_user_rows(all_events)))
                report.commits.append(self.wh.overwrite(T.USER_LEVELS, silver.level_history(all_events)))
                self._overwrite_checked(report, "songs", silver.clean_songs(self.wh.read(T.SONGS_RAW)), T.SONGS, state, songs_v)
                report.commits.append(self.wh.overwrite(T.ARTISTS, silver.artists_from_songs(self.wh.read(T.SONGS))))
        else:
            mark = state.watermark("silver<-bronze.events_raw")
            if events_v > mark:
                with self.status("silver: merging new events"):
                    self._silver_events(report, self._inserted(T.EVENTS_RAW, mark, events_v), state, events_v)
            mark = state.watermark("silver<-bronze.songs_raw")
            if songs_v > mark:
                with self.status("silver: merging new songs"):
                    self._silver_songs(report, self._inserted(T.SONGS_RAW, mark, songs_v), state, songs_v)
        assert state.watermarks is not None
        state.watermarks["silver<-bronze.events_raw"] = events_v
        state.watermarks["silver<-bronze.songs_raw"] = songs_v
        self.store.save(state)

    def _inserted(self, table: T.Table, after: int, upto: int) -> DataFrame:
        changes = self.wh.changes(table, after, upto)
        return changes.where(F.col("_change_type") == "insert").select(*table.schema.fieldNames())

    def _checked(self, report: RunReport, table: str, rows: DataFrame, persisted: list[DataFrame],
                 state: PipelineState, source_version: int) -> DataFrame:
        """Apply conf/quality.toml's rules for `table` to a batch: count, fail, quarantine; return the rows that load.

        The flagged batch is cached (appended to `persisted`): it is counted, then merged.
        Quarantine writes are idempotent per (generation, table, source version).
        """
        rules = [r for r in self.rules if r.table == table]
        if not rules:
            return rows
        flagged = quality.flag(rows, rules).persist()
        persisted.append(flagged)
        found = quality.counts(flagged, rules)
        self._settle_quality(report, table, flagged, rules, found, state, source_version, replace=False)
        return quality.passing(flagged, rules)

    def _overwrite_checked(self, report: RunReport, table: str, rows: DataFrame, target: T.Table,
                           state: PipelineState, source_version: int) -> None:
        """Rebuild `target` from `rows` that pass conf/quality.toml's rules; this source's quarantine rows are replaced.

        Without a `fail` rule the rows are counted while they are written (one pass); with one, they are
        counted first, so a broken `fail` rule leaves the table untouched.
        """
        rules = [r for r in self.rules if r.table == table]
        flagged = quality.flag(rows, rules)
        if any(r.action == "fail" for r in rules):
            found = quality.counts(flagged, rules)
            quality.enforce(found, rules)
            report.commits.append(self.wh.overwrite(target, quality.passing(flagged, rules)))
        else:
            seen = Observation(f"quality-{table}-{uuid.uuid4().hex}")
            observed = flagged.observe(seen, *quality.count_columns(rules)) if rules else flagged
            report.commits.append(self.wh.overwrite(target, quality.passing(observed, rules)))
            found = {name: int(n or 0) for name, n in seen.get.items()} if rules else {}
        self._settle_quality(report, table, flagged, rules, found, state, source_version, replace=True)

    def _settle_quality(self, report: RunReport, table: str, flagged: DataFrame, rules: list[quality.Rule],
                        found: dict[str, int], state: PipelineState, source_version: int, replace: bool) -> None:
        """Record rule counts in the run, stop on `fail` rules, write quarantined rows (a rebuild replaces them)."""
        report.quality.update({f"{table}.{k}": v for k, v in found.items()})
        quality.enforce(found, rules)
        for rule in rules:
            if found[rule.name]:
                log.warning("silver %s: %d rows break rule %s (%s)", table, found[rule.name], rule.name, rule.action)
        source = f"silver.{table}"
        app_id = f"{state.generation}/quality/{table}"
        any_quarantined = any(found[r.name] for r in rules if r.action == "quarantine")
        bad = quality.quarantined(flagged, rules, source, report.run_id, source_version) if any_quarantined else None
        if replace:
            report.commits.append(self.wh.replace_quarantine(source, bad, app_id, source_version))
        elif bad is not None:
            report.commits.append(self.wh.append(T.QUARANTINE, bad, app_id, source_version))

    def _silver_events(self, report: RunReport, raw: DataFrame, state: PipelineState, source_version: int) -> None:
        cached: list[DataFrame] = []
        batch = self._checked(report, "events", silver.clean_events(raw), cached, state, source_version).persist()
        cached.append(batch)
        try:
            bounds = batch.agg(F.min("ts").alias("lo"), F.max("ts").alias("hi"), F.count("*").alias("n")).head()
            assert bounds is not None
            if not bounds["n"]:
                return
            # The ts range lets Delta skip target files outside the batch's time span.
            key = " AND ".join(
                ["t.user_id <=> s.user_id"] + [f"t.{c} = s.{c}" for c in silver.EVENT_KEY[1:]]
                + [f"t.ts BETWEEN {int(bounds['lo'])} AND {int(bounds['hi'])}"]
            )
            # A key seen before is replaced when the row comes from a newer file (a corrected re-upload).
            self._merge(report, T.EVENTS, (
                self.wh.delta(T.EVENTS).alias("t").merge(batch.alias("s"), key)
                .whenMatchedUpdateAll(condition=silver.NEWER_FILE)
                .whenNotMatchedInsertAll()
            ))

            # Level history: only users whose new events can change it (a late event, or a new level),
            # recomputed from each one's earliest new event on; the ts literal lets Delta skip older files.
            # Runs before the silver.users MERGE: it compares with each user's latest event so far.
            starts = silver.level_starts(batch, self.wh.read(T.USER_LEVELS), self.wh.read(T.USERS)).persist()
            cached.append(starts)
            if starts.isEmpty():
                log.info("%s: no level changed", T.USER_LEVELS.qualified)
            else:
                recent = self.wh.read(T.EVENTS).where(F.col("ts") >= int(bounds["lo"]))
                history = silver.level_history_since(self.wh.read(T.USER_LEVELS), recent, F.broadcast(starts))
                self._replace_rows(report, T.USER_LEVELS, history, starts.select("user_id"), ["user_id", "valid_from"])

            # A later latest event, or the same event corrected by a newer file (its values differ).
            latest = "struct(s.latest_ts, s.latest_session_id, s.latest_item_in_session)"
            their_latest = "struct(t.latest_ts, t.latest_session_id, t.latest_item_in_session)"
            differs = " OR ".join(f"NOT (s.{c} <=> t.{c})" for c in T.USERS.schema.fieldNames())
            newer = f"{latest} > {their_latest} OR ({latest} = {their_latest} AND ({differs}))"
            self._merge(report, T.USERS, (
                self.wh.delta(T.USERS).alias("t")
                .merge(silver.latest_user_rows(batch).alias("s"), "t.user_id = s.user_id")
                .whenMatchedUpdateAll(condition=newer)
                .whenNotMatchedInsertAll()
            ))
        finally:
            for df in cached:
                df.unpersist()

    def _silver_songs(self, report: RunReport, raw: DataFrame, state: PipelineState, source_version: int) -> None:
        cached: list[DataFrame] = []
        batch = self._checked(report, "songs", silver.clean_songs(raw), cached, state, source_version).persist()
        cached.append(batch)
        try:
            self._merge(report, T.SONGS, (
                self.wh.delta(T.SONGS).alias("t")
                .merge(batch.alias("s"), "t.song_id = s.song_id")
                .whenMatchedUpdateAll(condition=silver.NEWER_FILE)
                .whenNotMatchedInsertAll()
            ))
            affected = batch.where(F.col("artist_id").isNotNull()).select("artist_id").distinct()
            their_songs = self.wh.read(T.SONGS).join(F.broadcast(affected), "artist_id", "left_semi")
            self._replace_rows(report, T.ARTISTS, silver.artists_from_songs(their_songs), affected, ["artist_id"])
        finally:
            for df in cached:
                df.unpersist()

    def _merge(self, report: RunReport, table: T.Table, merge: DeltaMergeBuilder) -> None:
        """Execute a MERGE; its commit goes into the report only when it made a new version."""
        before = self.wh.version(table)
        merge.execute()
        commit = self.wh.last_commit(table)
        if commit.version > before:
            report.commits.append(commit)

    def _replace_rows(self, report: RunReport, table: T.Table, recomputed: DataFrame, scope: DataFrame,
                      row_key: list[str]) -> None:
        """Make `table`'s rows for the keys in `scope` equal `recomputed` (insert, update, delete) in one MERGE."""
        existing = self.wh.read(table).join(F.broadcast(scope), scope.columns, "left_semi")
        upserts = recomputed.select(*table.schema.fieldNames()).subtract(existing)
        gone = existing.join(recomputed, row_key, "left_anti")
        self._apply_changes(report, table, upserts.withColumn("_delete", F.lit(False)).unionByName(
            gone.withColumn("_delete", F.lit(True))), row_key)

    def _upsert(self, report: RunReport, table: T.Table, rows: DataFrame, key: list[str]) -> None:
        """MERGE rows by key: insert new keys, update rows whose values changed."""
        changed = rows.select(*table.schema.fieldNames()).subtract(self.wh.read(table))
        self._apply_changes(report, table, changed.withColumn("_delete", F.lit(False)), key)

    def _apply_changes(self, report: RunReport, table: T.Table, changes: DataFrame, key: list[str]) -> None:
        """MERGE changed rows (flagged `_delete` or not) by key; no MERGE, no new version, when nothing changed.

        Only rows that differ from the table reach the MERGE: most days change few users, artists or
        levels, and a MERGE costs a dozen Spark jobs even when it changes nothing.
        """
        changes = changes.persist()
        try:
            if changes.isEmpty():
                log.info("%s: no row changed", table.qualified)
                return
            columns: dict[str, str | Column] = {c: f"s.{c}" for c in table.schema.fieldNames()}
            self._merge(report, table, (
                self.wh.delta(table).alias("t")
                .merge(changes.alias("s"), " AND ".join(f"t.{c} = s.{c}" for c in key))
                .whenMatchedDelete(condition="s._delete")
                .whenMatchedUpdate(condition="NOT s._delete", set=columns)
                .whenNotMatchedInsert(condition="NOT s._delete", values=columns)
            ))
        finally:
            changes.unpersist()

    # ------------------------------------------------------------------ gold
    def gold(self, report: RunReport, state: PipelineState, full: bool) -> None:
        for table in T.GOLD_TABLES:
            self.wh.ensure(table)
        versions = {t.qualified: self.wh.version(t) for t in (T.EVENTS, T.SONGS, T.USERS, T.ARTISTS)}
        if full:
            with self.status("gold: rebuilding the star schema"):
                songplays = gold.songplays(self.wh.read(T.EVENTS), self.wh.read(T.SONGS))
                report.commits.append(self.wh.overwrite(T.SONGPLAYS, songplays))
                all_plays = self.wh.read(T.SONGPLAYS)
                report.commits.append(self.wh.overwrite(T.TIME, gold.time_rows(all_plays)))
                report.commits.append(self.wh.overwrite(T.GOLD_USERS, gold.users(self.wh.read(T.USERS), all_plays)))
                report.commits.append(self.wh.overwrite(T.GOLD_SONGS, gold.songs(self.wh.read(T.SONGS))))
                report.commits.append(self.wh.overwrite(T.GOLD_ARTISTS, gold.artists(self.wh.read(T.ARTISTS))))
        else:
            with self.status("gold: merging changes from silver"):
                self._gold_incremental(report, state, versions)
        assert state.watermarks is not None
        for name, version in versions.items():
            state.watermarks[f"gold<-{name}"] = version
        self.store.save(state)

    def _changed(self, state: PipelineState, table: T.Table, version: int, kinds: tuple[str, ...]) -> DataFrame | None:
        mark = state.watermark(f"gold<-{table.qualified}")
        if version <= mark:
            return None
        return self.wh.changes(table, mark, version).where(F.col("_change_type").isin(*kinds))

    def _gold_incremental(self, report: RunReport, state: PipelineState, versions: dict[str, int]) -> None:
        # New events, and events that a newer file corrected (a re-upload).
        new_events = self._changed(state, T.EVENTS, versions["silver.events"], ("insert", "update_postimage"))
        changed_songs = self._changed(state, T.SONGS, versions["silver.songs"], ("insert", "update_preimage", "update_postimage"))
        changed_users = self._changed(state, T.USERS, versions["silver.users"], ("insert", "update_postimage"))
        changed_artists = self._changed(state, T.ARTISTS, versions["silver.artists"], ("insert", "update_postimage"))

        candidates: DataFrame | None = None
        if new_events is not None:
            candidates = gold.plays(new_events.select(*T.EVENTS.schema.fieldNames()))
        if changed_songs is not None:
            # Late songs: earlier plays with this title and artist are resolved again against all songs.
            keys = changed_songs.select(F.col("title").alias("song_title"), "artist_name").distinct()
            earlier = gold.plays(self.wh.read(T.EVENTS)).join(F.broadcast(keys), ["song_title", "artist_name"], "left_semi")
            candidates = earlier if candidates is None else candidates.unionByName(earlier)
        if candidates is not None:
            candidates = candidates.dropDuplicates(list(silver.EVENT_KEY))
            upserts = gold.songplays(candidates, self.wh.read(T.SONGS)).persist()
            try:
                # Literal bounds let Delta prune partitions and skip files outside the rows' time span.
                span = upserts.agg(
                    F.date_format(F.min("start_time"), "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("lo"),
                    F.date_format(F.max("start_time"), "yyyy-MM-dd HH:mm:ss.SSSSSS").alias("hi"),
                    F.min("year").alias("y0"), F.max("year").alias("y1"),
                ).head()
                assert span is not None
                if span["lo"] is not None:  # else no play to write
                    within = f"t.start_time BETWEEN TIMESTAMP '{span['lo']}' AND TIMESTAMP '{span['hi']}'"
                    # A late song changes song_id/artist_id; a corrected event, any column.
                    same = " AND ".join(f"t.{c} <=> s.{c}" for c in T.SONGPLAYS.schema.fieldNames())
                    self._merge(report, T.SONGPLAYS, (
                        self.wh.delta(T.SONGPLAYS).alias("t")
                        .merge(upserts.alias("s"), f"t.songplay_id = s.songplay_id AND t.year BETWEEN {span['y0']} AND {span['y1']} "
                               f"AND t.year = s.year AND t.month = s.month AND {within}")
                        .whenMatchedUpdateAll(condition=f"NOT ({same})")
                        .whenNotMatchedInsertAll()
                    ))
                    self._merge(report, T.TIME, (
                        self.wh.delta(T.TIME).alias("t")
                        .merge(gold.time_rows(upserts).alias("s"), f"t.start_time = s.start_time AND {within}")
                        .whenNotMatchedInsertAll()
                    ))
            finally:
                upserts.unpersist()

        # Users whose gold row may change: new players, and users whose silver row changed.
        new_players = gold.plays(new_events).select("user_id") if new_events is not None else None
        affected_parts = [df for df in (new_players, changed_users.select("user_id") if changed_users is not None else None)
                          if df is not None]
        if affected_parts:
            affected = functools.reduce(DataFrame.unionByName, affected_parts).distinct()
            # Who has played a song: the users already in gold.users (each has a play) and the new players.
            players = self.wh.read(T.GOLD_USERS).select("user_id")
            if new_players is not None:
                players = players.unionByName(new_players)
            their_rows = self.wh.read(T.USERS).join(F.broadcast(affected), "user_id", "left_semi")
            self._upsert(report, T.GOLD_USERS, gold.users(their_rows, players), ["user_id"])
        if changed_songs is not None:
            current = changed_songs.where(F.col("_change_type") != "update_preimage")
            self._upsert(report, T.GOLD_SONGS, gold.songs(silver.latest_per_key(current, ["song_id"], [F.col("_commit_version").desc()])), ["song_id"])
        if changed_artists is not None:
            latest = silver.latest_per_key(changed_artists, ["artist_id"], [F.col("_commit_version").desc()])
            self._upsert(report, T.GOLD_ARTISTS, gold.artists(latest), ["artist_id"])

    # ------------------------------------------------------------------ run log
    def _log_run(self, report: RunReport) -> None:
        totals = report.totals()
        row = {
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
        try:
            df = self.spark.createDataFrame([row], T.RUNS.schema)
            self.wh.append(T.RUNS, df)
        except Exception:  # the run's own outcome matters more than its log line
            log.exception("could not append to %s", T.RUNS.qualified)


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
