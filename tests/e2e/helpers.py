"""Helpers for end-to-end tests: landing files, reading gold back."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from pyspark.sql import DataFrame

from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.pipeline import Pipeline, RunReport

DATA_TABLES = tuple(t for t in T.ALL_TABLES if t is not T.RUNS)


def land(files: list[Path], generated: Path, landing: Path) -> None:
    """Copy generated files (keeping their relative paths and mtimes) into the landing zone."""
    for f in files:
        target = landing / f.relative_to(generated)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)


def run(spark, settings: Settings, kind: str = "incremental") -> RunReport:
    return Pipeline(spark, settings).run(kind)


def gold_tables(spark, settings: Settings) -> dict[str, DataFrame]:
    wh = T.Warehouse(spark, settings)
    return {t.qualified: wh.read(t) for t in T.GOLD_TABLES}


def versions(spark, settings: Settings) -> dict[str, int]:
    wh = T.Warehouse(spark, settings)
    return {t.qualified: wh.version(t) for t in DATA_TABLES}

REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "sparkify"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
