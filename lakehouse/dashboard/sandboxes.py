"""The analysts' schemas on the dashboard: the Delta tables that SQL endpoint users made in their sandboxes
(`analytics`, `dev_ana`, ...), read from the files under the warehouse's sandbox folder
(`<warehouse>/_spark_warehouse/<schema>.db/<table>`), whatever the catalog (an embedded one is the endpoint's alone)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lakehouse import tables as T


@dataclass
class SandboxTable:
    """One table of an analysts' schema: its size as Delta reports it."""

    schema: str
    name: str
    version: int
    files: int
    size_bytes: int
    last_write: datetime | None


def sandbox_tables(wh: T.Warehouse) -> list[SandboxTable]:
    """Every Delta table in a sandbox folder, by schema and name (views have no files: they are not listed)."""
    from delta.tables import DeltaTable

    jvm = wh.spark.sparkContext._jvm
    assert jvm is not None
    pattern = jvm.org.apache.hadoop.fs.Path(f"{wh.settings.sandbox_path}/*.db/*/_delta_log")
    fs = pattern.getFileSystem(wh.spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    found = []
    for status in fs.globStatus(pattern) or []:
        folder = status.getPath().getParent()
        delta = DeltaTable.forPath(wh.spark, folder.toString())
        detail = delta.detail().head().asDict()  # type: ignore[union-attr]
        version = delta.history(1).select("version").head()
        found.append(SandboxTable(
            schema=folder.getParent().getName().removesuffix(".db"), name=folder.getName(), version=int(version[0]) if version else -1,
            files=int(detail.get("numFiles") or 0), size_bytes=int(detail.get("sizeInBytes") or 0), last_write=detail.get("lastModified"),
        ))
    return sorted(found, key=lambda t: (t.schema, t.name))
