"""Table history, restore and maintenance (OPTIMIZE / VACUUM)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from lakehouse import tables as T
from lakehouse.errors import ConfigError, LakehouseError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)
MIN_RETAIN_HOURS = 168
MAINTAIN_THREADS = 3


def _versions(wh: T.Warehouse, table: T.Table) -> tuple[list[int], datetime, datetime]:
    rows = wh.delta(table).history().select("version", "timestamp").collect()
    versions = sorted(int(r[0]) for r in rows)
    stamps = sorted(r[1] for r in rows)
    return versions, stamps[0], stamps[-1]


def parse_timestamp(timestamp: str) -> datetime:
    """A --timestamp value (UTC), or a clear error."""
    try:
        return datetime.fromisoformat(timestamp.replace("Z", ""))
    except ValueError:
        raise ConfigError(f"--timestamp {timestamp!r}: expected e.g. '2026-11-24 10:00:00' (UTC)") from None


def restore(wh: T.Warehouse, table_name: str, version: int | None, timestamp: str | None) -> tuple[int, int]:
    """Restore a table to a version or timestamp; returns (version before, new version)."""
    table = T.lookup(table_name)
    delta = wh.delta(table)
    versions, first, _ = _versions(wh, table)
    current = versions[-1]
    if version is not None:
        if version not in versions:
            raise LakehouseError(
                f"{table.qualified} has no version {version} (versions {versions[0]}..{current} are available)"
            )
        delta.restoreToVersion(version)
    else:
        assert timestamp is not None
        when = parse_timestamp(timestamp)
        if when < first:
            raise LakehouseError(f"{table.qualified} did not exist at {timestamp} (its first version is from {first} UTC)")
        delta.restoreToTimestamp(when.strftime("%Y-%m-%d %H:%M:%S.%f"))
    return current, wh.version(table)


def check_retention(retain_hours: int) -> None:
    """VACUUM below 7 days could delete files that time travel or a running reader still needs."""
    if retain_hours < MIN_RETAIN_HOURS:
        raise ConfigError(
            f"--retain-hours {retain_hours}: below {MIN_RETAIN_HOURS} h VACUUM could delete files that time travel "
            "or a running reader still needs"
        )


def maintain(
    wh: T.Warehouse, retain_hours: int = MIN_RETAIN_HOURS, status: Callable[[str], Any] | None = None
) -> list[dict[str, Any]]:
    """OPTIMIZE (compact small files) and VACUUM (retention >= 7 days) every existing table.

    Tables are independent and each step is mostly driver work, so MAINTAIN_THREADS run at once.
    """
    check_retention(retain_hours)
    tables = [t for t in T.ALL_TABLES if wh.exists(t)]

    def one(table: T.Table) -> dict[str, Any]:
        started = time.perf_counter()
        delta = wh.delta(table)
        optimized = delta.optimize().executeCompaction().select("metrics.numFilesAdded", "metrics.numFilesRemoved").head()
        vacuumed = older_files_than(wh, table, retain_hours)
        if vacuumed:
            delta.vacuum(retain_hours)
        else:
            log.info("%s: no file older than %d h, nothing VACUUM could delete; skipped", table.qualified, retain_hours)
        # The snapshot's count of files: a scan's inputFiles() lists them in a Spark job (7-11 s for 15 small tables).
        detail = delta.detail().select("numFiles").head()
        log.info("maintained %s", table.qualified)
        return {
            "table": table.qualified,
            "files_added": int(optimized[0]) if optimized else 0,
            "files_removed": int(optimized[1]) if optimized else 0,
            "files_now": int(detail[0] or 0) if detail else 0,
            "vacuumed": vacuumed,
            "seconds": round(time.perf_counter() - started, 1),
        }

    ctx = status(f"maintain: OPTIMIZE and VACUUM {len(tables)} tables") if status else contextlib.nullcontext()
    with ctx, ThreadPoolExecutor(MAINTAIN_THREADS, thread_name_prefix="maintain") as pool:
        return list(pool.map(one, tables))


def older_files_than(wh: T.Warehouse, table: T.Table, hours: float) -> bool:
    """Whether the table's folder holds a file (outside `_delta_log`) last modified more than `hours` ago.

    VACUUM deletes only unreferenced files older than its retention, so without one it has nothing to delete;
    skipping it saves its listing job and its two log entries (about 1.4 s a table). The listing stops at the
    first old file, which on a table that has lived past the retention is usually the first one.
    """
    jvm: Any = wh.spark.sparkContext._jvm
    root = jvm.org.apache.hadoop.fs.Path(wh.path(table))
    fs = root.getFileSystem(wh.spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    cutoff_ms = (time.time() - hours * 3600) * 1000
    files = fs.listFiles(root, True)
    while files.hasNext():
        status = files.next()
        if status.getModificationTime() < cutoff_ms and "/_delta_log/" not in status.getPath().toUri().getPath():
            return True
    return False


_HIVE_TYPES = {"long": "bigint", "integer": "int", "string": "string", "double": "double", "timestamp": "timestamp",
               "date": "date", "boolean": "boolean"}


def manifests(wh: T.Warehouse) -> list[dict[str, Any]]:
    """Symlink-format manifests for the gold tables (Athena, Redshift Spectrum, Presto).

    Sets `delta.compatibility.symlinkFormatManifest.enabled`, so Delta rewrites the manifests on every
    later commit (they stay current after each run), and generates them now.
    """
    done = []
    for table in T.GOLD_TABLES:
        delta = wh.delta(table)
        wh.spark.sql(
            f"ALTER TABLE delta.`{wh.path(table)}` SET TBLPROPERTIES (delta.compatibility.symlinkFormatManifest.enabled = true)"
        )
        delta.generate("symlink_format_manifest")
        done.append({"table": table.qualified, "manifest": f"{wh.path(table)}/_symlink_format_manifest/", "ddl": external_table_ddl(wh, table)})
    return done


def external_table_ddl(wh: T.Warehouse, table: T.Table) -> str:
    """CREATE EXTERNAL TABLE for Athena / Redshift Spectrum over the table's symlink manifest."""
    location = wh.path(table).replace("s3a://", "s3://", 1)
    columns = ",\n  ".join(
        f"`{f.name}` {_HIVE_TYPES[f.dataType.typeName()]}" for f in table.schema.fields if f.name not in table.partition_by
    )
    partitions = ", ".join(
        f"`{f.name}` {_HIVE_TYPES[f.dataType.typeName()]}" for f in table.schema.fields if f.name in table.partition_by
    )
    ddl = f"CREATE EXTERNAL TABLE {table.layer}.{table.name} (\n  {columns}\n)\n"
    if partitions:
        ddl += f"PARTITIONED BY ({partitions})\n"
    ddl += (
        "ROW FORMAT SERDE 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'\n"
        "STORED AS INPUTFORMAT 'org.apache.hadoop.hive.ql.io.SymlinkTextInputFormat'\n"
        "OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n"
        f"LOCATION '{location}/_symlink_format_manifest/';"
    )
    if partitions:
        ddl += f"\nMSCK REPAIR TABLE {table.layer}.{table.name};"
    return ddl


CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")


def check_change_feed(table: T.Table, since_version: int) -> None:
    """One-line errors before Spark starts: a table without a change feed, a negative version."""
    if not table.change_feed:
        with_feed = ", ".join(t.qualified for t in T.ALL_TABLES if t.change_feed)
        raise ConfigError(f"{table.qualified} keeps no Change Data Feed; these do: {with_feed}")
    if since_version < 0:
        raise ConfigError(f"--since-version {since_version}: versions start at 0")


def changes(wh: T.Warehouse, table: T.Table, since_version: int, preimages: bool = False) -> tuple[DataFrame, int]:
    """The Change Data Feed of versions since_version..latest (as `table_changes(table, since_version)`) and
    the latest version. Rows: the table's columns + _change_type (insert, update_postimage, delete; and
    update_preimage when asked), _commit_version, _commit_timestamp; oldest commit first.
    since_version = latest + 1 (nothing new yet) gives no rows."""
    wh.delta(table)  # TableNotFound when the table does not exist yet
    latest = wh.version(table)
    if since_version > latest + 1:
        raise ConfigError(f"--since-version {since_version}: {table.qualified} is at version {latest} (its next version is {latest + 1})")
    reader = wh.spark.read.format("delta").option("readChangeFeed", "true")
    start = min(since_version, latest)
    df = reader.option("startingVersion", start).option("endingVersion", latest).load(wh.path(table))
    if since_version > latest:
        df = df.limit(0)
    if not preimages:
        df = df.where(F.col("_change_type") != "update_preimage")
    data = [c for c in df.columns if c not in CHANGE_COLUMNS]
    return df.select(*data, *CHANGE_COLUMNS).orderBy("_commit_version", F.col("_change_type").desc()), latest
