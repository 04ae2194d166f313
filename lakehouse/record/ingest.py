"""Bronze ingestion: the record of what landed, each file version exactly once, nothing dropped.

- New files: the files of a source that bronze has not recorded make one batch (lakehouse.record.landing.BatchPlan,
  saved before it is written); its commits are marked with the batch, so a batch replayed after a crash
  reads the same files and skips what its first attempt committed.
- Every file version read is recorded in `bronze.landed_files` (source, path, modification time, ETag).
- Re-uploads: a file that lands again under a name bronze knows, in a new version (another ETag, or another
  modification time where the ETag is unknown), is read again; its rows are appended (bronze keeps both versions) and replace the old rows in silver through
  the natural keys (the newest file wins).
- Drift: fields the explicit schema does not name are kept in `_rescued_data` and counted per run.
- `run full --reingest` starts bronze again from the landing zone, after `missing_from_landing` has
  checked that no file bronze holds is gone from it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from lakehouse import erasure, schemas
from lakehouse import tables as T
from lakehouse.record import bronze, landing
from lakehouse.record.listing import list_landing
from lakehouse.report import LeftBronze, RunReport, SourceCounts

if TYPE_CHECKING:
    from pyspark.sql.types import StructType

    from lakehouse.config import Settings
    from lakehouse.state import Files

log = logging.getLogger(__name__)
EXAMPLES_SHOWN = 5


@dataclass(frozen=True)
class Source:
    """A folder of the landing zone and the bronze table it lands in."""

    name: str
    table: T.Table
    json_schema: StructType
    parse: Callable[[DataFrame], DataFrame]
    whole_file: bool  # one JSON object per file (songs) or per line (logs)


def sources() -> tuple[Source, ...]:
    """The landing zone's sources, resolved when called (so a schema change takes effect at once)."""
    return (
        Source(bronze.SONGS_SOURCE, T.SONGS_RAW, schemas.SONG_JSON, bronze.parse_songs, True),
        Source(bronze.EVENTS_SOURCE, T.EVENTS_RAW, schemas.EVENT_JSON, bronze.parse_events, False),
    )


def _text(reader: Any, whole_file: bool) -> Any:
    return (
        reader.format("text")
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", "*.json")
        .option("wholetext", str(whole_file).lower())
    )


def _with_lineage(text: DataFrame) -> DataFrame:
    return text.select(
        "value",
        F.col("_metadata.file_path").alias("_source_file"),
        F.col("_metadata.file_modification_time").alias("_source_modified_at"),
    )


def _batch_counts() -> list[Column]:
    """Per parsed batch: files, non-blank rows in, rows that load, loaded rows with rescued fields, file versions.

    Counted while the rows are written (observed metrics allow no DISTINCT: a set's size instead).
    """
    return [
        F.size(F.collect_set("_source_file")).alias("files"),
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.col("_reason").isNull()).alias("ok"),
        F.count_if(F.col("_reason").isNull() & F.col("_rescued_data").isNotNull()).alias("rescued"),
        F.collect_set(F.struct("_source_file", "_source_modified_at")).alias("landed"),
    ]


# A batch of more files than this that is also most of its folder is read whole and joined with its names.
PRUNE_MAX_FILES = 1000
# A batch of at most this many files is read by naming them (one status request per file on S3), unless a
# name holds a character the reader would take for a glob pattern.
NAMED_MAX_FILES = 400
GLOB_CHARS = frozenset("*?[]{}\\")
# On S3 a batch of at most this many files that is a small share of its folder is read by name too: a few requests
# per file (measured on the S3 test server: HEAD x3, LIST, GET) instead of a listing of the whole folder.
BY_NAME_MAX_FILES = 1000


def _literal(path: str) -> str:
    """A path Spark's reader takes as it is: Hadoop's glob characters escaped."""
    return "".join("\\" + c if c in GLOB_CHARS else c for c in path)


def _etag(found: dict[str, landing.Version], spark_path: str, ms: int) -> str | None:
    """The ETag found with a file (by decoded path) when Spark read the version found, else None (unknown)."""
    version = found.get(unquote(spark_path))
    return version.etag if version is not None and version.ms == ms else None


class Ingest:
    """The bronze step of one run."""

    def __init__(self, spark: Any, settings: Settings, wh: T.Warehouse, files: Files, report: RunReport) -> None:
        self.spark = spark
        self.settings = settings
        self.wh = wh
        self.files = files
        self.report = report
        self.recorded: list[tuple[str, int, str | None]] = []  # (path, modified ms, ETag) written to landed_files
        self.forgotten = erasure.Forgotten(wh)  # users whose events never reach bronze again (lakehouse.erasure)

    def folder(self, source: Source) -> str:
        return f"{self.settings.source}/{source.name}"

    def erases(self, source: Source) -> bool:
        """Whether the erasure list removes anything from a source's rows (events, once anyone is on the list)."""
        return source.name == bronze.EVENTS_SOURCE and bool(self.forgotten.ids())

    def without_forgotten(self, source: Source, parsed: DataFrame) -> DataFrame:
        """A source's parsed rows without the forgotten users' events (songs carry no user)."""
        return erasure.drop_landed(parsed, self.forgotten.ids()) if source.name == bronze.EVENTS_SOURCE else parsed

    # ------------------------------------------------------------------ new files
    @staticmethod
    def app_id(source: Source, generation: str) -> str:
        """The name of a source's batches (a new one per `run full --reingest` generation)."""
        return f"{generation}/{source.table.name}/batches"

    def last_batch(self, source: Source) -> int:
        """For a warehouse that has no batch count yet: the highest `_batch_id` bronze holds (-1 for an empty table).

        Batches then number on from it, so `_batch_id` stays unique across the file streams of older versions.
        """
        if self.wh.version(source.table) <= 0:  # only the CREATE: nothing landed yet
            return -1
        row = self.wh.read(source.table).agg(F.max("_batch_id")).head()
        return -1 if row is None or row[0] is None else int(row[0])

    def read_batch(self, source: Source, plan: landing.BatchPlan, in_folder: int) -> SourceCounts:
        """Land exactly the plan's files as batch `plan.batch` (a replay skips the writes already committed).

        `in_folder`: files the source's folder holds now. A first attempt at a plan of a few files (the days of
        log files) names them to the reader: nothing to list and nothing to filter per row (a filter on the decoded file path
        is evaluated for every line again after it pruned the files). So does, on S3, a first attempt at a plan that is a
        small share of its folder (a listing of the folder is a thousand pages at a million objects). Otherwise, a plan
        of a few of the folder's files: the folder is pruned to the plan's files by name (a filter on the file metadata,
        applied before any file is opened). A plan of most of a large folder (a new warehouse): every file is read and
        the rows are kept by a join with the plan's names, since a filter of thousands of names costs seconds per query
        to plan and ship (measured: 38.1 s against 28.4 s for the bronze of 30 days and 20,000 song files).
        """
        named = sorted(plan.files)
        few = len(named) <= NAMED_MAX_FILES and not any(GLOB_CHARS.intersection(p) for p in named)
        share = self.settings.source.startswith("s3a://") and len(named) <= BY_NAME_MAX_FILES and 2 * len(named) < in_folder
        # A replay reads its folder: a planned file that has gone since (an expired landing zone) adds no row there,
        # where a named file that is missing fails the read, and would fail every replay after it.
        if not plan.replay and (few or share):
            return self.write(source, self._read_files(source, named), plan)
        small = len(plan.files) <= PRUNE_MAX_FILES or 2 * len(plan.files) < in_folder
        text = _with_lineage(_text(self.spark.read, source.whole_file).load(self.folder(source)))
        # _metadata.file_path is percent-encoded; the plan holds decoded paths ('+' is literal in a path).
        decoded = F.url_decode(F.replace(F.col("_source_file"), F.lit("+"), F.lit("%2B")))
        if small:
            return self.write(source, text.where(decoded.isin(sorted(plan.files))), plan)
        names = self.spark.createDataFrame([(path,) for path in sorted(plan.files)], "_plan_path string")
        return self.write(source, text.join(F.broadcast(names), decoded == F.col("_plan_path"), "left_semi"), plan)

    def _read_files(self, source: Source, paths: list[str]) -> DataFrame:
        """The lineage text of files named one by one (decoded paths); files deleted since they were found are left out."""
        try:
            return _with_lineage(_text(self.spark.read, source.whole_file).load([_literal(p) for p in paths]))
        except Exception as exc:  # AnalysisException PATH_NOT_FOUND: a file was deleted since it was listed
            if "PATH_NOT_FOUND" not in str(exc) and "does not exist" not in str(exc):
                raise
        there = [p for p in paths if self.files.exists(p)]
        log.warning("bronze %s: %d file(s) deleted since they were found; reading the other %d", source.name, len(paths) - len(there), len(there))
        if not there:
            return self.spark.createDataFrame([], "value string, _source_file string, _source_modified_at timestamp")
        return _with_lineage(_text(self.spark.read, source.whole_file).load([_literal(p) for p in there]))

    def write(self, source: Source, text: DataFrame, plan: landing.BatchPlan | None = None,
              versions: dict[str, landing.Version] | None = None) -> SourceCounts:
        """Parse landed text, append the rows that load, quarantine the rest, record the file versions read.

        With `plan`, every commit is marked with the batch; a replayed plan skips the commits its first
        attempt made (and counts the batch again). The ETag recorded with a file is the one found with it
        (the plan's, or `versions`, by decoded path) when Spark read the same modification time.
        """
        now = F.current_timestamp()
        batch_id = plan.batch if plan else None
        marker = plan.marker if plan else None
        parsed = bronze.non_blank(source.parse(text))
        erased = None
        if self.erases(source):  # counted, so that no row leaves unsaid
            erased = Observation(f"bronze-erased-{source.name}-{uuid.uuid4().hex}")
            parsed = parsed.observe(erased, F.count(F.lit(1)).alias("rows"))
        valid = self.without_forgotten(source, parsed)

        def committed(table: T.Table) -> bool:
            return plan is not None and plan.replay and self.wh.marked(table, plan.marker, plan.versions.get(table.qualified, -1))

        if committed(source.table):
            row = valid.agg(*_batch_counts()).head()
            assert row is not None
            stats = row.asDict()
            written = self.wh.read(source.table).where(F.col("_batch_id") == F.lit(batch_id))
        else:
            seen = Observation(f"bronze-{source.name}-{uuid.uuid4().hex}")
            loaded = bronze.loaded_rows(valid.observe(seen, *_batch_counts()), source.json_schema, batch_id, now)
            commit = self.wh.append(source.table, loaded, marker=marker)
            self.report.commits.append(commit)
            stats = dict(seen.get)
            written = self.wh.changes(source.table, commit.version - 1, commit.version)
        rows, ok = int(stats["rows"]), int(stats["ok"])
        if stats["rescued"]:
            found = {r["field"]: int(r["rows"]) for r in bronze.rescued_field_counts(written).collect()}
            self.report.add_new_fields(source.name, found)
        listed = plan.files if plan else versions or {}
        landed = [(source.name, r[0], landing.millis(r[1]), _etag(listed, r[0], landing.millis(r[1]))) for r in stats["landed"]]
        self._record(landed, marker, write=not committed(T.LANDED_FILES))
        if rows > ok and not committed(T.QUARANTINE):
            bad = bronze.quarantined_rows(valid, source.name, batch_id, self.report.run_id, now)
            self.report.commits.append(self.wh.append(T.QUARANTINE, bad, marker=marker))
        forgotten = int(erased.get["rows"]) - rows if erased is not None else 0
        return SourceCounts(int(stats["files"]), rows, ok, rows - ok, forgotten)

    def _record(self, landed: list[tuple[str, str, int, str | None]], marker: str | None = None, write: bool = True) -> None:
        """Append file versions read (source, path, ms, ETag) to bronze.landed_files (unless a replay finds them there) and to `recorded`."""
        self.recorded += [(p, ms, etag) for _, p, ms, etag in landed]
        if not landed or not write:
            return
        at = datetime.now(timezone.utc).replace(tzinfo=None)
        df = self.spark.createDataFrame([(s, p, landing.from_millis(ms), at, self.report.run_id, etag) for s, p, ms, etag in landed],
                                        T.LANDED_FILES.schema)
        self.report.commits.append(self.wh.append(T.LANDED_FILES, df, marker=marker))

    def backfill_landed_files(self) -> None:
        """A warehouse from before bronze.landed_files: record the file versions bronze already holds."""
        for source in sources():
            if not self.wh.exists(source.table):
                continue
            held = self.wh.read(source.table).groupBy(F.col("_source_file").alias("path")).agg(
                F.max("_source_modified_at").alias("modified_at"))
            rows = held.select(F.lit(source.name).alias("source"), "path", "modified_at", F.current_timestamp().alias("ingested_at"),
                               F.lit(self.report.run_id).alias("run_id"), F.lit(None).cast("string").alias("etag"))
            commit = self.wh.append(T.LANDED_FILES, rows)
            log.info("bronze.landed_files: recorded %s file versions that %s already held", commit.rows_out(), source.table.qualified)

    # ------------------------------------------------------------------ files that landed again
    def reuploads(self, index: landing.LandedIndex, moved: dict[str, dict[str, landing.Version]]) -> dict[str, SourceCounts]:
        """Read again the files that landed under a known name in another version, and append those whose rows changed.

        `moved`: per source, {path as Spark names it: the version found} of recorded files (LandedIndex.compare).
        """
        counts = {}
        for source in sources():
            files = moved.get(source.name)
            if files:
                counts[source.name] = self._read_again(source, index, files)
        return counts

    def _read_again(self, source: Source, index: landing.LandedIndex, moved: dict[str, landing.Version]) -> SourceCounts:
        """Append the moved files whose rows differ from the version bronze holds; record every moved version."""
        paths = sorted(moved)
        latest = {p: landing.from_millis(index.latest(p)) for p in paths}
        held = self.wh.read(source.table).where(F.col("_source_file").isin(paths))
        # A version already in bronze (a run stopped before recording it) is recorded, not read again; unless its
        # time is one recorded before (a re-upload within the same second: only the ETag differs), then it is read.
        in_bronze = {(r[0], r[1]) for r in held.select("_source_file", "_source_modified_at").distinct().collect()}
        recorded = {p: {v.ms for v in index.versions(unquote(p))} for p in paths}
        todo = [p for p in paths if (p, landing.from_millis(moved[p].ms)) not in in_bronze or moved[p].ms in recorded[p]]
        changed: list[str] = []
        counts = SourceCounts()
        versions = {unquote(p): v for p, v in moved.items()}
        if todo:
            text = self._read_files(source, [unquote(p) for p in todo])
            changed = self._changed_files(source, text, held, {p: latest[p] for p in todo})
            if changed:
                counts = self.write(source, text.where(F.col("_source_file").isin(changed)), versions=versions)
        shown = sorted(p.removeprefix(self.settings.source + "/") for p in changed)
        if shown:
            log.warning("bronze %s: %d file(s) landed again with new content; reading them again: %s",
                        source.name, len(shown), ", ".join(shown[:EXAMPLES_SHOWN]))
            self.report.reuploaded[source.name] = shown
        same = len(todo) - len(changed)
        if same:
            log.info("bronze %s: %d file(s) landed again with the same content (recorded, not read again)", source.name, same)
        self._record([(source.name, p, v.ms, v.etag) for p, v in sorted(moved.items()) if p not in changed])
        return counts

    def _changed_files(self, source: Source, text: DataFrame, held: DataFrame, latest: dict[str, datetime]) -> list[str]:
        """The files whose loaded rows (fields and rescued data) differ from those of their latest version in bronze."""
        columns = ["_source_file", *source.json_schema.fieldNames(), "_rescued_data"]
        fresh = bronze.loaded_rows(self.without_forgotten(source, bronze.non_blank(source.parse(text))), source.json_schema, None,
                                   F.current_timestamp())
        versions = self.spark.createDataFrame(sorted(latest.items()), "_source_file string, _source_modified_at timestamp")
        before = held.join(F.broadcast(versions), ["_source_file", "_source_modified_at"], "left_semi")
        fresh, before = fresh.select(*columns), before.select(*columns)
        differ = fresh.exceptAll(before).unionByName(before.exceptAll(fresh)).select("_source_file").distinct()
        return sorted(r[0] for r in differ.collect())

    # ------------------------------------------------------------------ run full --reingest
    def missing_from_landing(self) -> LeftBronze:
        """The files bronze holds (loaded or quarantined rows) that the landing zone no longer has."""
        files, rows, names = 0, 0, []
        for source in sources():
            if not self.wh.exists(source.table):
                continue
            held = self.wh.read(source.table).select(F.col("_source_file").alias("path"))
            if self.wh.exists(T.QUARANTINE):
                quarantined = self.wh.read(T.QUARANTINE).where(F.col("source") == source.name)
                held = held.unionByName(quarantined.select(F.col("file").alias("path")))
            landed = {f.path for f in list_landing(self.settings.source, [source.name])}
            gone = [r for r in held.groupBy("path").count().collect() if unquote(r["path"]) not in landed]
            files += len(gone)
            rows += sum(int(r["count"]) for r in gone)
            names += [unquote(r["path"]).removeprefix(self.settings.source + "/") for r in gone]
        return LeftBronze(files, rows, sorted(names)[:EXAMPLES_SHOWN])

    def truncate(self, generation: str) -> None:
        """Empty bronze (a new version of each table) before it is ingested again from the landing zone."""
        for table in (T.SONGS_RAW, T.EVENTS_RAW, T.LANDED_FILES):
            self.report.commits.append(self.wh.overwrite(table, self.spark.createDataFrame([], table.schema)))
        for source in sources():
            if emptied := self.wh.replace_quarantine(source.name, None, f"{generation}/truncate/{source.name}", 0):
                self.report.commits.append(emptied)
