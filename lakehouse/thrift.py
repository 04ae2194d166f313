"""Spark Thrift Server (JDBC/ODBC endpoint) over the warehouse's tables."""

from __future__ import annotations

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError


def command(settings: Settings, action: str) -> int:
    raise LakehouseError("lakehouse thrift is not available yet")
