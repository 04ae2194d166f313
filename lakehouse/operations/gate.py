"""The quality gate a scheduler runs after a run, before anyone is told the data is ready: checks over its ops.runs row."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from pyspark.sql import functions as F

from lakehouse import tables as T
from lakehouse.errors import TableNotFound

RUN_KINDS = ("incremental", "full")


class Check(NamedTuple):
    """One check of the gate, and the figures it looked at."""

    name: str
    passed: bool
    detail: str


def run_row(wh: T.Warehouse, run_id: str | None) -> dict[str, Any]:
    """The ops.runs row of `run_id`, or of the latest incremental or full run; TableNotFound when there is none."""
    if not wh.exists(T.RUNS):
        raise TableNotFound(f"{T.RUNS.qualified} does not exist in {wh.settings.warehouse}: no run to check yet")
    runs = wh.read(T.RUNS)
    runs = runs.where(F.col("run_id") == run_id) if run_id else runs.where(F.col("kind").isin(*RUN_KINDS))
    row = runs.orderBy(F.col("started_at").desc()).head()
    if row is None:
        raise TableNotFound(f"no run {run_id!r} in {T.RUNS.qualified}" if run_id else f"no incremental or full run in {T.RUNS.qualified}")
    return row.asDict()


def checks(row: dict[str, Any], max_quarantined: float, max_violations: float) -> list[Check]:
    """The gate over one ops.runs row: it succeeded, its rows reconcile, and bad rows stay under the shares allowed."""
    rows_in, loaded, quarantined = (int(row.get(k) or 0) for k in ("rows_in", "rows_loaded", "rows_quarantined"))
    try:
        details = json.loads(row.get("details") or "{}")
    except ValueError:
        details = {}
    violations = sum(int(v) for v in (details.get("quality_rule_violations") or {}).values() if isinstance(v, int))

    def share(n: int) -> float:
        return n / rows_in if rows_in else 0.0

    return [
        Check("succeeded", row.get("status") == "succeeded",
              f"status {row.get('status')}" + (f": {row['error']}" if row.get("error") else "")),
        Check("reconciled", rows_in == loaded + quarantined, f"{rows_in:,} rows in = {loaded:,} loaded + {quarantined:,} quarantined"),
        Check("quarantine", share(quarantined) <= max_quarantined,
              f"{quarantined:,} rows quarantined ({share(quarantined):.2%} of rows in; at most {max_quarantined:.2%})"),
        Check("rules", share(violations) <= max_violations,
              f"{violations:,} quality-rule violations ({share(violations):.2%} of rows in; at most {max_violations:.2%})"),
    ]
