"""Make deleted rows unreadable in old table versions too: files, change data and the Delta log.

A DELETE rewrites the files that held the rows, but the old files stay for time travel, the deleted rows sit
in the Change Data Feed's `_change_data` files, and the log's older commits keep the old files' min/max
statistics. Per table, `purge`:
1. purges deletion vectors (REORG TABLE ... APPLY (PURGE)) when the table uses them (ours do not);
2. VACUUMs with retention 0, removing every file the current version does not use (old data, change data);
3. writes a checkpoint of the current version and deletes the log entries before it (commits, checksums,
   older checkpoints), as Delta's own log cleanup does after its retention.
The cost: time travel (VERSION AS OF, restore, the change feed) before that checkpoint is gone for the table.
Personal columns are kept out of per-file statistics (`Table.personal`), so new log entries hold none.
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lakehouse import tables as T

log = logging.getLogger(__name__)

RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
STATS_COLUMNS = "delta.dataSkippingStatsColumns"
PURGE_THREADS = 3  # as maintain: each step is mostly driver work
_LOG_ENTRY = re.compile(r"^\.?(\d{20})\.")  # 00000000000000000012.json, .00000000000000000012.crc.crc, ...checkpoint.parquet


def properties(wh: T.Warehouse, table: T.Table) -> dict[str, str]:
    """The table's properties as the latest snapshot has them (from its metadata: no Spark job)."""
    delta = wh.delta(table)  # loads the latest snapshot
    try:
        metadata = json.loads(delta._jdt.deltaLog().unsafeVolatileSnapshot().metadata().json())  # type: ignore[attr-defined]
        return {str(k): str(v) for k, v in (metadata["metaData"].get("configuration") or {}).items()}
    except Exception:  # an internal API: DESCRIBE DETAIL answers too, at the cost of a Spark job
        row = delta.detail().select("properties").head()
        return dict(row[0] or {}) if row is not None else {}


def exclude_personal_stats(wh: T.Warehouse, table: T.Table) -> None:
    """Keep `table`'s personal columns out of per-file statistics (a warehouse created before they were declared)."""
    wanted = table.stats_columns
    if wanted is not None and properties(wh, table).get(STATS_COLUMNS) != wanted:
        wh.spark.sql(f"ALTER TABLE delta.`{wh.path(table)}` SET TBLPROPERTIES ('{STATS_COLUMNS}' = '{wanted}')")
        log.info("%s: personal columns kept out of file statistics from now on", table.qualified)


def purge(wh: T.Warehouse, tables: list[T.Table]) -> dict[str, int]:
    """Purge each table's old versions; returns table -> its first version still readable."""
    conf = wh.spark.conf
    previous = conf.get(RETENTION_CHECK, "true")
    conf.set(RETENTION_CHECK, "false")  # VACUUM ... RETAIN 0 HOURS, for these calls only
    try:
        with ThreadPoolExecutor(PURGE_THREADS, thread_name_prefix="purge") as pool:
            return dict(zip([t.qualified for t in tables], pool.map(lambda t: _purge_one(wh, t), tables), strict=True))
    finally:
        conf.set(RETENTION_CHECK, previous or "true")


def _purge_one(wh: T.Warehouse, table: T.Table) -> int:
    exclude_personal_stats(wh, table)
    path = wh.path(table)
    if properties(wh, table).get("delta.enableDeletionVectors", "false").lower() == "true":
        wh.spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
    wh.delta(table).vacuum(0.0)
    kept = truncate_log(wh, table)
    log.info("purged %s: versions before %d are gone", table.qualified, kept)
    return kept


def truncate_log(wh: T.Warehouse, table: T.Table) -> int:
    """Checkpoint the current version, then delete the log entries of the versions before it; returns that version."""
    version = wh.version(table)  # loads the latest snapshot, the one checkpoint() writes
    jvm: Any = wh.spark.sparkContext._jvm
    jvm.org.apache.spark.sql.delta.DeltaLog.forTable(wh.spark._jsparkSession, wh.path(table)).checkpoint()
    log_dir = jvm.org.apache.hadoop.fs.Path(f"{wh.path(table)}/_delta_log")
    fs = log_dir.getFileSystem(wh.spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    checkpoints = [int(m.group(1)) for st in fs.listStatus(log_dir)
                   if (m := _LOG_ENTRY.match(st.getPath().getName())) and ".checkpoint" in st.getPath().getName()]
    if version not in checkpoints:
        raise RuntimeError(f"{table.qualified}: no checkpoint at version {version} after checkpoint(); log left as it was")
    for status in fs.listStatus(log_dir):
        match = _LOG_ENTRY.match(status.getPath().getName())
        if status.isFile() and match and int(match.group(1)) < version:
            fs.delete(status.getPath(), False)
    return version
