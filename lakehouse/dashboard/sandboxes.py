"""The analysts' schemas on the dashboard: the Delta tables that SQL endpoint users made in their sandboxes
(`analytics`, `dev_ana`, ...), found under the warehouse's sandbox folder
(`<warehouse>/_spark_warehouse/<schema>.db/<table>`), whatever the catalog (an embedded one is the endpoint's alone).
Finding them is a listing of two folder levels; their figures come from their Delta logs with the lakehouse's own."""

from __future__ import annotations

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


def sandbox_folders(sandbox_uri: str) -> list[tuple[str, str, str]]:
    """(schema, table, uri) of every table folder in a sandbox schema (`<schema>.db/<table>`), sorted; views have
    no folder, so they are not listed. A folder without a Delta log is dropped when its log is read."""
    found = []
    for schema_folder in storage.list_folder(sandbox_uri).folders:
        if schema_folder.endswith(".db"):
            schema_uri = f"{sandbox_uri}/{schema_folder}"
            found += [(schema_folder.removesuffix(".db"), name, f"{schema_uri}/{name}") for name in storage.list_folder(schema_uri).folders]
    return sorted(found)
