"""The right to erasure, pure parts: which rows belong to a user, and the erasure list that later runs obey.

A forgotten user's rows are found by `user_id` in silver and gold, by `userId` in bronze.events_raw and by
the user id in the raw text of bronze.quarantine (a log line's `"userId"`, a silver row's `"user_id"`).
The erasure list (`ops.forgotten_users`) holds ids and when; bronze drops those users' events as they land
and the flows drop them from any change they read, so a re-delivered or late file cannot bring them back.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse import tables as T
from lakehouse.errors import ConfigError

# The user id in raw JSON text: a log line's "userId": "17" (or 17), a quarantined silver row's "user_id": 17.
RAW_USER_ID = r'"user_?[iI]d"\s*:\s*"?\s*(\d+)'
# Tables that hold rows of a user, in the order `forget` deletes from them (gold.time: see orphan_times).
BY_USER_ID = (T.EVENTS, T.USER_LEVELS, T.USERS, T.SONGPLAYS, T.GOLD_USERS)
ERASED_TABLES = (T.EVENTS_RAW, T.QUARANTINE, *BY_USER_ID, T.TIME)
MAX_USER_ID = 2**63 - 1


def parse_user_ids(values: list[str]) -> list[int]:
    """`--user-id` values as sorted distinct ids; a malformed one is a one-line ConfigError."""
    ids = set()
    for value in values:
        text = value.strip()
        if not text.isdigit() or not text.isascii() or int(text) > MAX_USER_ID:
            raise ConfigError(f"--user-id {value!r}: expected a user id (a whole number >= 0, as in the events' userId)")
        ids.add(int(text))
    if not ids:
        raise ConfigError("forget needs at least one --user-id")
    return sorted(ids)


def raw_user_id(raw: Column) -> Column:
    """The user id named in raw JSON text (NULL when it names none)."""
    return F.regexp_extract(raw, RAW_USER_ID, 1).try_cast("long")


def user_id_of(table: T.Table) -> Column:
    """The column expression that gives a row's user id in `table`."""
    if table is T.EVENTS_RAW:
        return F.trim(F.col("userId")).try_cast("long")
    if table is T.QUARANTINE:
        return raw_user_id(F.col("raw"))
    return F.col("user_id")


def belongs_to(table: T.Table, ids: list[int]) -> Column:
    """TRUE for the rows of `table` that belong to one of `ids` (never NULL)."""
    return F.coalesce(user_id_of(table).isin(*ids), F.lit(False))


def orphan_times(songplays: DataFrame, ids: list[int]) -> DataFrame:
    """gold.time keys (start_time) that only the plays of `ids` use: they go when those plays go."""
    theirs = songplays.where(belongs_to(T.SONGPLAYS, ids)).select("start_time").distinct()
    return theirs.join(songplays.where(~belongs_to(T.SONGPLAYS, ids)).select("start_time"), "start_time", "left_anti")


def drop_landed(parsed: DataFrame, ids: list[int]) -> DataFrame:
    """Parsed log lines (bronze.parse_events) without those of `ids`, whether they load or not."""
    if not ids:
        return parsed
    user = F.coalesce(F.trim(F.col("_json.userId")).try_cast("long"), raw_user_id(F.col("value")))
    return parsed.where(~F.coalesce(user.isin(*ids), F.lit(False)))


def drop_changes(table: T.Table, changes: DataFrame, ids: list[int]) -> DataFrame:
    """A table's Change Data Feed rows without those of `ids` (tables without a user id: unchanged)."""
    if not ids or ("user_id" not in table.schema.fieldNames() and table is not T.EVENTS_RAW):
        return changes
    return changes.where(~belongs_to(table, ids))


class Forgotten:
    """The erasure list of one warehouse, read when first needed and again only when the table has a new version."""

    _cache: ClassVar[dict[str, tuple[int, list[int]]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, wh: T.Warehouse) -> None:
        self.wh = wh

    def ids(self) -> list[int]:
        if not self.wh.exists(T.FORGOTTEN):
            return []
        path, version = self.wh.path(T.FORGOTTEN), self.wh.version(T.FORGOTTEN)
        with self._lock:
            cached = self._cache.get(path)
            if cached is None or cached[0] != version:
                rows = self.wh.read(T.FORGOTTEN, version).select("user_id").distinct().collect()
                cached = (version, sorted(int(r[0]) for r in rows))
                self._cache[path] = cached
        return cached[1]
