"""The quality gate a scheduler runs after a run, before anyone is told the data is ready: checks over its ops.runs row.

The row is read from the Delta log with delta-rs (`lakehouse gate` starts no JVM: ops.runs is one row per run)."""

from __future__ import annotations

import datetime
import json
from typing import Any, NamedTuple

from lakehouse import tables as T
from lakehouse.errors import TableNotFound

RUN_KINDS = ("incremental", "full")


class Check(NamedTuple):
    """One check of the gate, and the figures it looked at."""

    name: str
    passed: bool
    detail: str


# What the gate reads of each ops.runs row.
COLUMNS = ["run_id", "kind", "status", "started_at", "rows_in", "rows_loaded", "rows_quarantined", "error", "details"]


def run_row(rows: list[dict[str, Any]], run_id: str | None) -> dict[str, Any]:
    """Of ops.runs' `rows`, the row of `run_id`, or of the latest incremental or full run; TableNotFound when there is none."""
    chosen = [r for r in rows if r["run_id"] == run_id] if run_id else [r for r in rows if r["kind"] in RUN_KINDS]
    if not chosen:
        raise TableNotFound(f"no run {run_id!r} in {T.RUNS.qualified}" if run_id else f"no incremental or full run in {T.RUNS.qualified}")
    return max(chosen, key=lambda r: r["started_at"] or datetime.datetime.min)


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
