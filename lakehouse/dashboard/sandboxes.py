"""The analysts' schemas on the dashboard: the Delta tables that SQL endpoint users made in their sandboxes
(`analytics`, `dev_ana`, ...), found under the warehouse's sandbox folder
(`<warehouse>/_spark_warehouse/<schema>.db/<table>`), whatever the catalog (an embedded one is the endpoint's alone).
Finding them is a listing of two folder levels; their figures come from their Delta logs with the lakehouse's own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from lakehouse import storage


@dataclass
class SandboxTable:
    """One table of an analysts' schema: its size as Delta reports it."""

    schema: str
    name: str
    version: int
    files: int
    size_bytes: int
    last_write: datetime | None


def _subfolders(uri: str) -> Iterator[str]:
    """The names of the folders directly under `uri` (local path, file: or s3a: URI); none when it is absent."""
    if uri.startswith("s3a://"):
        bucket, prefix = storage.split_s3a(uri)
        pages = storage.shared_s3_client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=f"{prefix}/" if prefix else "", Delimiter="/")
        for page in pages:
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"].rstrip("/").rsplit("/", 1)[-1]
        return
    path = uri.removeprefix("file:")
    if os.path.isdir(path):
        yield from sorted(entry.name for entry in os.scandir(path) if entry.is_dir())


def sandbox_folders(sandbox_uri: str) -> list[tuple[str, str, str]]:
    """(schema, table, uri) of every table folder in a sandbox schema (`<schema>.db/<table>`), sorted; views have
    no folder, so they are not listed. A folder without a Delta log is dropped when its log is read."""
    found = []
    for schema_folder in _subfolders(sandbox_uri):
        if schema_folder.endswith(".db"):
            schema_uri = f"{sandbox_uri}/{schema_folder}"
            found += [(schema_folder.removesuffix(".db"), name, f"{schema_uri}/{name}") for name in _subfolders(schema_uri)]
    return sorted(found)
