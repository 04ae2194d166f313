"""Bronze ingestion: the record of what landed, each file version exactly once, nothing dropped.

- New files: a file stream per source (availableNow + checkpoint) lists the files not seen before; each
  micro-batch writes with txnAppId/txnVersion, so a batch replayed after a crash is not written twice.
- Every file version read is recorded in `bronze.landed_files` (source, path, modification time).
- Re-uploads: a file that lands again under a name bronze knows, with a new modification time, is read
  again; its rows are appended (bronze keeps both versions) and replace the old rows in silver through
  the natural keys (the newest file wins). The file stream alone would skip it silently.
- Drift: fields the explicit schema does not name are kept in `_rescued_data` and counted per run.
- `run full --reingest` starts bronze again from the landing zone, after `missing_from_landing` has
  checked that no file bronze holds is gone from it.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pyspark.sql import Column, DataFrame, Observation
from pyspark.sql import functions as F

from lakehouse import bronze, erasure, landing, schemas
from lakehouse import tables as T
from lakehouse.report import LeftBronze, RunReport, SourceCounts

if TYPE_CHECKING:
    from pyspark.sql.streaming import DataStreamReader, StreamingQuery
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


class Ingest:
    """The bronze step of one run."""

    def __init__(self, spark: Any, settings: Settings, wh: T.Warehouse, files: Files, report: RunReport) -> None:
        self.spark = spark
        self.settings = settings
        self.wh = wh
        self.files = files
        self.report = report
        self._lock = threading.Lock()  # the sources share landed_files and quarantine: one writer at a time
        self.recorded: list[tuple[str, str, int]] = []  # (source, path, modified ms) written to landed_files
        self.forgotten = erasure.Forgotten(wh)  # users whose events never reach bronze again (lakehouse.erasure)

    def folder(self, source: Source) -> str:
        return f"{self.settings.source}/{source.name}"

    # ------------------------------------------------------------------ new files
    def start_stream(self, source: Source, generation: str, counts: SourceCounts) -> StreamingQuery:
        """Start the availableNow file stream of one source; each micro-batch lands in bronze once."""
        reader: DataStreamReader = _text(self.spark.readStream, source.whole_file)
        raw = _with_lineage(reader.load(self.folder(source)))
        app_id = f"{generation}/{source.table.name}"

        def write_batch(batch: DataFrame, batch_id: int) -> None:
            counts.add(self.write(source, batch, batch_id, app_id))

        return (
            raw.writeStream.foreachBatch(write_batch)
            .option("checkpointLocation", f"{self.settings.system_path}/checkpoints/{generation}/{source.table.name}")
            .trigger(availableNow=True)
            .queryName(f"bronze_{source.table.name}")
            .start()
        )

    def write(self, source: Source, text: DataFrame, batch_id: int | None, app_id: str | None) -> SourceCounts:
        """Parse landed text, append the rows that load, quarantine the rest, record the file versions read.

        With `app_id`, every write happens at most once per (app_id, batch_id); a replayed batch is counted again.
        """
        now = F.current_timestamp()
        valid = self.forgotten.drop(source, bronze.non_blank(source.parse(text)))
        seen = Observation(f"bronze-{source.name}-{uuid.uuid4().hex}")
        loaded = bronze.loaded_rows(valid.observe(seen, *_batch_counts()), source.json_schema, batch_id, now)
        writer = loaded.write.format("delta").mode("append")
        if app_id is not None:
            writer = writer.option("txnAppId", app_id).option("txnVersion", batch_id)
        writer.save(self.wh.path(source.table))
        # PySpark cannot ask an Observation whether it completed without blocking: the JVM object can.
        if seen._jo is not None and seen._jo.future().isCompleted():
            stats = dict(seen.get)
            commit = self.wh.last_commit(source.table)
            self.report.commits.append(commit)
            written = self.wh.changes(source.table, commit.version - 1, commit.version)
        else:  # Delta skipped the write: this batch was committed before a crash; count it again
            row = valid.agg(*_batch_counts()).head()
            assert row is not None
            stats = row.asDict()
            written = self.wh.read(source.table).where(F.col("_batch_id") == F.lit(batch_id))
        rows, ok = int(stats["rows"]), int(stats["ok"])
        if stats["rescued"]:
            found = {r["field"]: int(r["rows"]) for r in bronze.rescued_field_counts(written).collect()}
            self.report.add_new_fields(source.name, found)
        landed = [(source.name, r[0], r[1]) for r in stats["landed"]]
        bad = bronze.quarantined_rows(valid, source.name, batch_id, self.report.run_id, now) if rows > ok else None
        with self._lock:
            self._record(landed, None if app_id is None else f"{app_id}/files", batch_id)
            if bad is not None:
                txn = (None, None) if app_id is None else (f"{app_id}/quarantine", batch_id)
                self.report.commits.append(self.wh.append(T.QUARANTINE, bad, *txn))
        return SourceCounts(int(stats["files"]), rows, ok, rows - ok)

    def _record(self, landed: list[tuple[str, str, datetime]], app_id: str | None, batch_id: int | None) -> None:
        if not landed:
            return
        at = datetime.now(timezone.utc).replace(tzinfo=None)
        df = self.spark.createDataFrame([(s, p, m, at, self.report.run_id) for s, p, m in landed], T.LANDED_FILES.schema)
        self.report.commits.append(self.wh.append(T.LANDED_FILES, df, app_id, batch_id))
        self.recorded += [(s, p, landing.millis(m)) for s, p, m in landed]

    def backfill_landed_files(self) -> None:
        """A warehouse from before bronze.landed_files: record the file versions bronze already holds."""
        for source in sources():
            if not self.wh.exists(source.table):
                continue
            held = self.wh.read(source.table).groupBy(F.col("_source_file").alias("path")).agg(
                F.max("_source_modified_at").alias("modified_at"))
            rows = held.select(F.lit(source.name).alias("source"), "path", "modified_at",
                               F.current_timestamp().alias("ingested_at"), F.lit(self.report.run_id).alias("run_id"))
            commit = self.wh.append(T.LANDED_FILES, rows)
            log.info("bronze.landed_files: recorded %s file versions that %s already held", commit.rows_out(), source.table.qualified)

    # ------------------------------------------------------------------ files that landed again
    def listing(self, source: Source) -> DataFrame:
        """(path, modified_at) of every *.json file under the source's folder, as bronze names them."""
        reader = self.spark.read.format("binaryFile").option("recursiveFileLookup", "true").option("pathGlobFilter", "*.json")
        return reader.load(self.folder(source)).select(
            F.col("_metadata.file_path").alias("path"), F.col("_metadata.file_modification_time").alias("modified_at")
        )

    def landing_listing(self, present: list[Source]) -> dict[landing.Key, int]:
        """(source, path) -> modified ms of every *.json file of the `present` sources (local: no Spark job)."""
        listing = landing.list_local(self.settings.source, [s.name for s in present])
        if listing is None and present:
            listings = [self.listing(s).withColumn("source", F.lit(s.name)) for s in present]
            listing = landing.as_listing(functools.reduce(DataFrame.unionByName, listings))
        return listing or {}

    def reuploads(self, index: landing.LandedIndex, moved: dict[str, dict[str, int]]) -> dict[str, SourceCounts]:
        """Read again the files that landed under a known name with a new modification time and new content.

        `moved`: per source, {path: new modified ms} of recorded files (LandedIndex.compare); only those
        are read, and only those whose rows changed are appended.
        """
        counts = {}
        for source in sources():
            files = moved.get(source.name)
            if files:
                latest = {p: landing.from_millis(index.latest(source.name, p)) for p in files}
                counts[source.name] = self._read_again(source, {(p, landing.from_millis(ms)) for p, ms in files.items()}, latest)
        return counts

    def _read_again(self, source: Source, moved: set[tuple[str, datetime]], latest: dict[str, datetime]) -> SourceCounts:
        """Append the moved files whose rows differ from the version bronze holds; record every moved version."""
        paths = sorted({p for p, _ in moved})
        held = self.wh.read(source.table).where(F.col("_source_file").isin(paths))
        # A version already in bronze (a run stopped before recording it) is recorded, not read again.
        in_bronze = {(r[0], r[1]) for r in held.select("_source_file", "_source_modified_at").distinct().collect()}
        todo = sorted(p for p, _ in moved - in_bronze)
        changed: list[str] = []
        counts = SourceCounts()
        if todo:
            text = _with_lineage(_text(self.spark.read, source.whole_file).load([unquote(p) for p in todo]))
            changed = self._changed_files(source, text, held, latest)
            if changed:
                counts = self.write(source, text.where(F.col("_source_file").isin(changed)), None, None)
        shown = sorted(p.removeprefix(self.settings.source + "/") for p in changed)
        if shown:
            log.warning("bronze %s: %d file(s) landed again with new content; reading them again: %s",
                        source.name, len(shown), ", ".join(shown[:EXAMPLES_SHOWN]))
            self.report.reuploaded[source.name] = shown
        same = len(todo) - len(changed)
        if same:
            log.info("bronze %s: %d file(s) landed again with the same content (recorded, not read again)", source.name, same)
        with self._lock:
            self._record([(source.name, p, m) for p, m in sorted(moved) if p not in changed], None, None)
        return counts

    def _changed_files(self, source: Source, text: DataFrame, held: DataFrame, latest: dict[str, datetime]) -> list[str]:
        """The files whose loaded rows (fields and rescued data) differ from those of their latest version in bronze."""
        columns = ["_source_file", *source.json_schema.fieldNames(), "_rescued_data"]
        fresh = bronze.loaded_rows(self.forgotten.drop(source, bronze.non_blank(source.parse(text))), source.json_schema, None,
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
            per_file = held.groupBy("path").count()
            if self.files.exists(self.folder(source)):
                per_file = per_file.join(self.listing(source).select("path"), "path", "left_anti")
            gone = per_file.collect()
            files += len(gone)
            rows += sum(int(r["count"]) for r in gone)
            names += [unquote(r["path"]).removeprefix(self.settings.source + "/") for r in gone]
        return LeftBronze(files, rows, sorted(names)[:EXAMPLES_SHOWN])

    def truncate(self, generation: str) -> None:
        """Empty bronze (a new version of each table) before it is ingested again from the landing zone."""
        for table in (T.SONGS_RAW, T.EVENTS_RAW, T.LANDED_FILES):
            self.report.commits.append(self.wh.overwrite(table, self.spark.createDataFrame([], table.schema)))
        for source in sources():
            self.report.commits.append(self.wh.replace_quarantine(source.name, None, f"{generation}/truncate/{source.name}", 0))
