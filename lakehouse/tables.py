"""Every table of the lakehouse, and the one place that reads and writes them (Delta by path)."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse import schemas
from lakehouse.config import Settings
from lakehouse.errors import ConfigError, TableNotFound

if TYPE_CHECKING:
    from delta.tables import DeltaTable
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Table:
    """A table's contract: where it lives, its columns, its grain (the COMMENT) and layout."""

    layer: str
    name: str
    schema: StructType
    comment: str
    partition_by: tuple[str, ...] = ()
    key: tuple[str, ...] = ()  # the columns that identify a row (none: bronze and logs keep every row)
    change_feed: bool = True
    # Copy-on-write everywhere: the tables that see updates (users, levels, artists, songs, gold
    # dimensions) are small, so rewriting a file costs less than writing deletion vectors (measured:
    # 7 extra Spark jobs per MERGE); gold must stay DV-free for Athena/Redshift Spectrum manifests.
    deletion_vectors: bool = False
    # Columns that hold personal data (names, gender, location, user agent, raw text): kept out of the
    # per-file min/max statistics in the Delta log, so an erased user's values never reach the log.
    personal: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def stats_columns(self) -> str | None:
        """`delta.dataSkippingStatsColumns`: every column but the personal and partition ones (None: Delta's default)."""
        if not self.personal:
            return None
        return ",".join(c for c in self.schema.fieldNames() if c not in self.personal and c not in self.partition_by)


SONGS_RAW = Table("bronze", "songs_raw", schemas.BRONZE_SONGS, "One row per song file as it landed")
EVENTS_RAW = Table("bronze", "events_raw", schemas.BRONZE_EVENTS, "One row per log line as it landed",
                   personal=("firstName", "lastName", "gender", "location", "userAgent", "_rescued_data"))
LANDED_FILES = Table("bronze", "landed_files", schemas.LANDED_FILES,
                     "One row per landed file version read into bronze (source, path, modification time)", change_feed=False)
QUARANTINE = Table("bronze", "quarantine", schemas.QUARANTINE, "One row per input row that was not loaded, with the reason",
                   change_feed=False, personal=("raw",))
SONGS = Table("silver", "songs", schemas.SILVER_SONGS, "One row per song_id (latest file wins)", key=("song_id",))
ARTISTS = Table("silver", "artists", schemas.SILVER_ARTISTS, "One row per artist_id (most complete, then most recent record)",
                key=("artist_id",))
EVENTS = Table("silver", "events", schemas.SILVER_EVENTS, "One row per event natural key (user_id, session_id, item_in_session, ts)",
               key=("user_id", "session_id", "item_in_session", "ts"),
               personal=("first_name", "last_name", "gender", "location", "user_agent"))
USERS = Table("silver", "users", schemas.SILVER_USERS, "One row per user_id, as of the user's latest event of any page", key=("user_id",),
              personal=("first_name", "last_name", "gender", "location"))
USER_LEVELS = Table("silver", "user_levels", schemas.SILVER_USER_LEVELS, "SCD2: one row per user_id and period with one level",
                    key=("user_id", "valid_from"))
SONGPLAYS = Table(
    "gold", "songplays", schemas.GOLD_SONGPLAYS, "Fact: one row per distinct NextSong event with a user_id",
    ("year", "month"), key=("songplay_id", "year", "month"), personal=("location", "user_agent"),
)
GOLD_USERS = Table("gold", "users", schemas.GOLD_USERS, "One row per user with at least one songplay; level as of the latest event",
                   key=("user_id",), personal=("first_name", "last_name", "gender"))
GOLD_SONGS = Table("gold", "songs", schemas.GOLD_SONGS, "One row per song_id", key=("song_id",))
GOLD_ARTISTS = Table("gold", "artists", schemas.GOLD_ARTISTS, "One row per artist_id", key=("artist_id",))
TIME = Table("gold", "time", schemas.GOLD_TIME, "One row per distinct songplay start_time (UTC)", key=("start_time",))
RUNS = Table("ops", "runs", schemas.RUNS, "One row per pipeline or maintenance run", change_feed=False)
FORGOTTEN = Table("ops", "forgotten_users", schemas.FORGOTTEN_USERS,
                  "The erasure list: one row per user id to forget (when, by which run); nothing else", change_feed=False)

ALL_TABLES: tuple[Table, ...] = (
    SONGS_RAW, EVENTS_RAW, LANDED_FILES, QUARANTINE, SONGS, ARTISTS, EVENTS, USERS, USER_LEVELS,
    SONGPLAYS, GOLD_USERS, GOLD_SONGS, GOLD_ARTISTS, TIME, RUNS, FORGOTTEN,
)
GOLD_TABLES = (SONGPLAYS, GOLD_USERS, GOLD_SONGS, GOLD_ARTISTS, TIME)
BY_NAME = {t.qualified: t for t in ALL_TABLES}


def lookup(name: str) -> Table:
    """The table called `layer.name`; a clear error for anything else."""
    table = BY_NAME.get(name.strip().lower())
    if table is None:
        raise TableNotFound(f"no table {name!r}; tables are: {', '.join(BY_NAME)}")
    return table


def named_in(query: str) -> list[Table]:
    """The tables a SQL text names as `layer.name` (backquoted or not), in catalog order."""
    names = {f"{m.group(1)}.{m.group(2)}".lower()
             for m in re.finditer(r"`?\b(bronze|silver|gold|ops)`?\s*\.\s*`?(\w+)\b", query, re.IGNORECASE)}
    return [t for t in BY_NAME.values() if t.qualified in names]


@dataclass(frozen=True)
class Commit:
    """What one write did: the table version it made and Delta's operation metrics."""

    table: str
    version: int
    operation: str
    metrics: dict[str, str]

    def rows_out(self) -> int:
        m = self.metrics
        for key in ("numOutputRows", "numTargetRowsInserted"):
            if key in m:
                base = int(m[key])
                if key == "numTargetRowsInserted":
                    base += int(m.get("numTargetRowsUpdated", 0))
                return base
        return 0


ENSURE_THREADS = 4


class Warehouse:
    """Reads and writes the Delta tables of one warehouse, by path."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        from lakehouse.state import Files

        self.spark = spark
        self.settings = settings
        self.files = Files(spark)
        self._ensured: set[str] = set()
        self._catalog_lock = threading.Lock()

    def path(self, table: Table) -> str:
        return self.settings.table_path(table.layer, table.name)

    def exists(self, table: Table) -> bool:
        from delta.tables import DeltaTable

        return bool(DeltaTable.isDeltaTable(self.spark, self.path(table)))

    def ensure_all(self, tables: Iterable[Table]) -> None:
        """`ensure` each of `tables`, a few at a time.

        Creating a table is a Delta commit of its first version, mostly waiting on the file system: a new
        warehouse's 16 tables took 2.3-2.6 s one by one and 1.4-1.6 s four at a time (measured in one JVM).
        """
        from concurrent.futures import ThreadPoolExecutor

        todo = {t.qualified: t for t in tables if t.qualified not in self._ensured}.values()
        with ThreadPoolExecutor(max_workers=ENSURE_THREADS, thread_name_prefix="ensure") as pool:
            list(pool.map(self.ensure, todo))

    def ensure(self, table: Table) -> None:
        """Create `table` (empty, with its schema, comment and properties), or add the columns it lacks.

        A column declared after the table was created (a field that joined the schema) is added as a
        nullable column; rows written before read NULL there. A column whose type changed is an error.
        """
        from delta.tables import DeltaTable

        if table.qualified in self._ensured:
            return
        if self.exists(table):
            self._add_missing_columns(table)
            self._register_once(table)
            self._ensured.add(table.qualified)
            return
        builder = (
            DeltaTable.createIfNotExists(self.spark)
            .location(self.path(table))
            .addColumns(table.schema)
            .comment(table.comment)
            .property("delta.enableChangeDataFeed", str(table.change_feed).lower())
            .property("delta.enableDeletionVectors", str(table.deletion_vectors).lower())
            .property("delta.checkpoint.writeStatsAsStruct", "true")
        )
        if table.stats_columns is not None:
            builder = builder.property("delta.dataSkippingStatsColumns", table.stats_columns)
        if table.partition_by:
            builder = builder.partitionedBy(*table.partition_by)
        builder.execute()
        self._register_once(table)
        self._ensured.add(table.qualified)

    def _register_once(self, table: Table) -> None:
        """In a persistent catalog (`catalog = postgres`, shared by every JVM), the table's entry: made when the table
        is created (or first seen), so that endpoints and notebooks find it by name; nothing in memory."""
        if self.persistent_catalog():
            with self._catalog_lock:
                self.register([table])

    def _add_missing_columns(self, table: Table) -> None:
        existing = {f.name.lower(): f for f in self.spark.read.format("delta").load(self.path(table)).schema.fields}
        missing = []
        for f in table.schema.fields:
            found = existing.get(f.name.lower())
            if found is None:
                missing.append(f"`{f.name}` {f.dataType.simpleString()}")
            elif found.dataType != f.dataType:
                raise ConfigError(
                    f"{table.qualified} has column {f.name} as {found.dataType.simpleString()}, but the code declares "
                    f"{f.dataType.simpleString()}: a type change needs a new column (or `run full --reingest` into a new warehouse)"
                )
        if missing:
            log.info("%s: adding column(s) %s", table.qualified, ", ".join(missing))
            self.spark.sql(f"ALTER TABLE delta.`{self.path(table)}` ADD COLUMNS ({', '.join(missing)})")

    def delta(self, table: Table) -> DeltaTable:
        from delta.tables import DeltaTable

        if not self.exists(table):
            raise TableNotFound(f"table {table.qualified} does not exist in {self.settings.warehouse} (run `lakehouse run` first)")
        return DeltaTable.forPath(self.spark, self.path(table))

    def read(self, table: Table, version: int | None = None) -> DataFrame:
        """`table` with its declared columns: the current version, or `version`."""
        reader = self.spark.read.format("delta")
        if version is not None:
            reader = reader.option("versionAsOf", version)
        return reader.load(self.path(table)).select(*table.schema.fieldNames())

    def version(self, table: Table) -> int:
        """Latest committed version, or -1 when the table does not exist."""
        from delta.tables import DeltaTable

        if not self.exists(table):
            return -1
        delta = DeltaTable.forPath(self.spark, self.path(table))  # loads the latest snapshot
        try:
            # The snapshot just loaded: no Spark job (history(1) costs one, ~0.2 s, a dozen times a run).
            return int(delta._jdt.deltaLog().unsafeVolatileSnapshot().version())
        except Exception:  # an internal API: fall back to the public one
            return int(delta.history(1).select("version").head()[0])  # type: ignore[index]

    def holds_no_file(self, table: Table) -> bool:
        """Whether the existing table's current version has no data file, read from its checksum (no Spark job).

        False when the table does not exist or its checksum is not there.
        """
        from delta.tables import DeltaTable

        if not self.exists(table):
            return False
        try:
            known = DeltaTable.forPath(self.spark, self.path(table))._jdt.deltaLog().unsafeVolatileSnapshot().numOfFilesIfKnown()
            return bool(known.isDefined()) and int(known.get()) == 0
        except Exception:  # an internal API: then the caller does what it would have done anyway
            return False

    def changes(self, table: Table, after_version: int, up_to_version: int) -> DataFrame:
        """Change Data Feed rows of versions (after_version, up_to_version]."""
        return (
            self.spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", after_version + 1)
            .option("endingVersion", up_to_version)
            .load(self.path(table))
        )

    def last_commit(self, table: Table) -> Commit:
        """The latest commit: its version, operation and metrics, read from its entry in the Delta log."""
        version = self.version(table)
        info = self._commit_info(table, version)
        if info is not None:
            metrics = {k: str(v) for k, v in (info.get("operationMetrics") or {}).items()}
            return Commit(table.qualified, version, str(info.get("operation")), metrics)
        row = self.delta(table).history(1).select("version", "operation", "operationMetrics").head()  # e.g. a staged commit
        assert row is not None
        return Commit(table.qualified, int(row[0]), str(row[1]), dict(row[2] or {}))

    def overwrite(self, table: Table, df: DataFrame) -> Commit:
        """Replace the table's content in one transaction (a new version; the old stays reachable).

        A table that holds only its creation (version 0 of `ensure`) is appended to: the same rows in the same
        new version, without the Spark job in which Delta lists the files an overwrite removes.
        """
        self.ensure(table)
        (
            df.select(*table.schema.fieldNames())
            .write.format("delta")
            .mode("append" if self._only_created(table) else "overwrite")
            .option("overwriteSchema", "false")
            .save(self.path(table))
        )
        return self.last_commit(table)

    def append(self, table: Table, df: DataFrame, txn_app_id: str | None = None, txn_version: int | None = None,
               marker: str | None = None) -> Commit:
        """Append rows; with txn_app_id/txn_version the write happens at most once per (id, version).

        `marker` is kept in the commit's userMetadata (see `marked`): it costs no Spark job, where a
        txnAppId makes Delta rebuild the table's snapshot state first (one job, 1-3 s per table).
        """
        self.ensure(table)  # once per Warehouse and table
        writer = df.select(*table.schema.fieldNames()).write.format("delta").mode("append")
        if txn_app_id is not None:
            writer = writer.option("txnAppId", txn_app_id).option("txnVersion", txn_version)
        if marker is not None:
            writer = writer.option("userMetadata", marker)
        writer.save(self.path(table))
        return self.last_commit(table)

    def marked(self, table: Table, marker: str, after_version: int) -> bool:
        """Whether a commit after `after_version` carries `marker` as its userMetadata (read from the log, no Spark job)."""
        return any((self._commit_info(table, v) or {}).get("userMetadata") == marker
                   for v in range(after_version + 1, self.version(table) + 1))

    def _only_created(self, table: Table) -> bool:
        """Whether the table's one version is its creation by `ensure`, which adds no file (read from the log)."""
        if self.version(table) != 0:
            return False
        created = (self._commit_info(table, 0) or {}).get("operation") == "CREATE TABLE"
        return created and not any("add" in action for action in self._log_actions(table, 0))

    def _commit_info(self, table: Table, version: int) -> dict[str, Any] | None:
        """The commitInfo of one version, read from its JSON entry in the Delta log (None when not there)."""
        return next((dict(a["commitInfo"]) for a in self._log_actions(table, version) if a.get("commitInfo")), None)

    def _log_actions(self, table: Table, version: int) -> list[dict[str, Any]]:
        """The actions of one version's JSON entry in the Delta log (none when it is not there)."""
        entry = self.files.read(f"{self.path(table)}/_delta_log/{version:020d}.json") or ""
        return [json.loads(line) for line in entry.splitlines() if line.strip()]

    def replace_quarantine(self, source: str, rows: DataFrame | None, txn_app_id: str, txn_version: int) -> Commit | None:
        """Replace `source`'s rows of bronze.quarantine with `rows` (None: none left), at most once per txn.

        Nothing to remove and nothing to add is no commit (None): a txnAppId write first rebuilds the table's
        state in a Spark job, and an empty quarantine was rewritten twice by every new warehouse's first run.
        """
        if rows is None and self.holds_no_file(QUARANTINE):
            return None
        if rows is None:
            rows = self.spark.createDataFrame([], QUARANTINE.schema)
        (
            rows.write.format("delta").mode("overwrite").option("replaceWhere", f"source = '{source}'")
            .option("txnAppId", txn_app_id).option("txnVersion", txn_version).save(self.path(QUARANTINE))
        )
        return self.last_commit(QUARANTINE)

    def register(self, tables: Iterable[Table] = ALL_TABLES) -> list[str]:
        """Make `layer.name` resolvable in SQL for every existing table (external catalog entries at their location);
        their names.

        An in-memory catalog is filled per process: entries are made again, maybe for another warehouse. A persistent
        one (a Hive metastore: `catalog = postgres`, or the endpoint's `embedded` Derby) keeps what others made: an entry
        is made once, when missing, and made again only when it lacks a declared column (one added by path since) or,
        in the endpoint's own Derby, points elsewhere (a moved warehouse). A shared metastore whose entry points at
        another warehouse is an error: one metastore serves one warehouse.
        """
        registered: list[str] = []
        databases: set[str] = set()
        persistent = self.persistent_catalog()
        for table in tables:
            if not self.exists(table):
                continue
            if table.layer not in databases:
                if not self.spark.catalog.databaseExists(table.layer):  # a metastore logs IF NOT EXISTS as an error
                    self.spark.sql(f"CREATE DATABASE IF NOT EXISTS {table.layer}")
                databases.add(table.layer)
            if self.spark.catalog.tableExists(table.qualified):
                if persistent and self._entry_current(table):
                    registered.append(table.qualified)
                    continue
                # The entry is only a name for a location (an external table): dropping it leaves the data alone.
                self.spark.sql(f"DROP TABLE {table.qualified}")
            self.spark.sql(f"CREATE TABLE {table.qualified} USING DELTA LOCATION '{self.path(table)}'")
            registered.append(table.qualified)
        return registered

    def persistent_catalog(self) -> bool:
        """Whether this session's catalog outlives it (a Hive metastore), so that others' entries are kept."""
        return self.spark.conf.get("spark.sql.catalogImplementation", "in-memory") == "hive"

    def _entry_current(self, table: Table) -> bool:
        """Whether the persistent catalog's entry for `table` is at this warehouse's location with every declared
        column; an entry of a shared metastore at another location is an error."""
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        ident = jvm.org.apache.spark.sql.catalyst.TableIdentifier(table.name, jvm.scala.Option.apply(table.layer))
        entry = self.spark._jsparkSession.sessionState().catalog().getTableMetadata(ident)
        location = str(entry.location().toString()).rstrip("/").replace("file:///", "file:/")
        if location != self.path(table):
            if self.settings.catalog == "postgres":
                raise ConfigError(f"the metastore ({self.settings.metastore_url}) has {table.qualified} at {location}, not in this "
                                  f"warehouse ({self.path(table)}): one metastore serves one warehouse")
            log.warning("%s was registered at %s: registering it again at %s", table.qualified, location, self.path(table))
            return False
        columns = {str(name).lower() for name in entry.schema().fieldNames()}
        return all(name.lower() in columns for name in table.schema.fieldNames())


def as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
