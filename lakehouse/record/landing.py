"""What the landing zone holds against what bronze has recorded of it, compared on the driver.

A run first lists the landing zone (a local one with os.scandir, in a fraction of a second for 20,000
files; S3 with one Spark listing job) and compares it with `bronze.landed_files`, read from a copy
cached beside the pipeline state and keyed by the table's version (no Spark job while it is current).
Files bronze has not recorded make the next batch; files recorded under another modification time are
the re-uploads. When nothing landed, bronze costs no Spark job at all.

Exactly once: a batch's file list (`BatchPlan`) is saved before the batch is written, and every commit
of the batch is marked with it. A run that stops half-way leaves the plan behind; the next run replays
the same files under the same batch number and skips the commits the first attempt made.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote

from pyspark.sql import functions as F

from lakehouse import tables as T

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from lakehouse.state import Files

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (source, path as Spark names it, percent-decoded)


def millis(value: datetime) -> int:
    """Epoch milliseconds of a timestamp as PySpark returns it (naive, in this process's local time)."""
    return round(value.timestamp() * 1000)


def _hidden(name: str) -> bool:
    """Names Spark's file listing skips (InMemoryFileIndex): `_x` (but not `k=v`), `.x`, uploads in progress."""
    return (name.startswith("_") and "=" not in name) or name.startswith(".") or name.endswith("._COPYING_")


def _walk(folder: str) -> Iterator[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if _hidden(entry.name):
            continue
        if entry.is_dir(follow_symlinks=True):
            yield from _walk(entry.path)
        elif entry.name.endswith(".json"):
            yield entry


def list_local(source_uri: str, names: Iterable[str]) -> dict[Key, int] | None:
    """(source, path) -> modified ms of every *.json under each `source_uri/name`; None when not a local URI."""
    if not source_uri.startswith("file:"):
        return None
    root = source_uri[len("file:"):]
    return {(name, "file:" + entry.path): entry.stat().st_mtime_ns // 1_000_000
            for name in names for entry in _walk(os.path.join(root, name))}


def as_listing(df: DataFrame) -> dict[Key, int]:
    """Collect a (source, path, modified_at) listing DataFrame into the form of `list_local`."""
    rows = df.select("source", "path", F.unix_millis("modified_at").alias("ms")).collect()
    return {(r["source"], unquote(r["path"])): int(r["ms"]) for r in rows}


def from_millis(ms: int) -> datetime:
    """The naive local timestamp PySpark reads and writes for epoch milliseconds `ms` (exact to the ms)."""
    return datetime.fromtimestamp(ms // 1000).replace(microsecond=(ms % 1000) * 1000)


@dataclass
class LandedIndex:
    """`bronze.landed_files` at one table version: per (source, path), Spark's name for it and the times recorded."""

    version: int
    paths: dict[Key, str] = field(default_factory=dict)
    times: dict[Key, set[int]] = field(default_factory=dict)
    changed: bool = False  # differs from the cached copy

    def add(self, rows: Iterable[tuple[str, str, int]]) -> None:
        """Record (source, path as Spark names it, modified ms) rows."""
        for source, path, ms in rows:
            key = (source, unquote(path))
            self.paths.setdefault(key, path)
            self.times.setdefault(key, set()).add(ms)
            self.changed = True

    def compare(self, listing: dict[Key, int]) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
        """Per source: {decoded path: ms} of files never recorded, and {Spark's path: new ms} of recorded files that landed again."""
        new: dict[str, dict[str, int]] = {}
        moved: dict[str, dict[str, int]] = {}
        for key, ms in listing.items():
            known = self.times.get(key)
            if known is None:
                new.setdefault(key[0], {})[key[1]] = ms
            elif ms not in known:
                moved.setdefault(key[0], {})[self.paths[key]] = ms
        return new, moved

    def latest(self, source: str, path: str) -> int:
        """The newest modification time recorded for a path (as Spark names it)."""
        return max(self.times[(source, unquote(path))])

    # ------------------------------------------------------------------ cache beside the pipeline state
    @staticmethod
    def cache_uri(system_path: str) -> str:
        return f"{system_path}/landed_files.index.json"

    @classmethod
    def load(cls, wh: T.Warehouse, files: Files, system_path: str) -> LandedIndex:
        """The index at the table's current version: the cached copy when current, else read from the table."""
        version = wh.version(T.LANDED_FILES)
        cached = cls.from_cache(files.read(cls.cache_uri(system_path)), cls.cache_uri(system_path))
        if cached is not None and cached.version == version:
            return cached
        index = cls(version, changed=True)
        if version >= 0:
            rows = wh.read(T.LANDED_FILES).select("source", "path", F.unix_millis("modified_at").alias("ms")).collect()
            index.add((r["source"], r["path"], int(r["ms"])) for r in rows)
        return index

    @classmethod
    def from_cache(cls, text: str | None, where: str = "the index cache") -> LandedIndex | None:
        """The cached copy (as of the table version it names), or None when there is none or it cannot be read."""
        if text is None:
            return None
        try:
            doc = json.loads(text)
            index = cls(int(doc["version"]))
            index.add((s, p, ms) for s, p, times in doc["files"] for ms in times)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable %s", where)
            return None
        index.changed = False
        return index

    def save(self, files: Files, system_path: str, version: int) -> None:
        """Cache the index as of table `version` (every commit since it was loaded added through `add`)."""
        if not self.changed and version == self.version:
            return
        self.version = version
        doc = {"version": version,
               "files": [[key[0], self.paths[key], sorted(ms)] for key, ms in sorted(self.times.items())]}
        files.write(self.cache_uri(system_path), json.dumps(doc, separators=(",", ":")))
        self.changed = False


@dataclass
class BatchPlan:
    """The files of one bronze batch, saved before the batch is written, so that a replay reads the same files.

    Every commit of the batch carries `marker` in its userMetadata; `versions` holds each table's version
    when the plan was made, so a replay finds what its first attempt committed in the log after them.
    `files` maps each file's percent-decoded path to the modification time listed.
    """

    app_id: str
    batch: int
    files: dict[str, int]
    versions: dict[str, int]
    replay: bool = False  # loaded from a run that stopped before the batch was complete

    @property
    def marker(self) -> str:
        return f"{self.app_id}/{self.batch}"

    @staticmethod
    def uri(system_path: str, app_id: str) -> str:
        return f"{system_path}/bronze_batches/{app_id}.json"

    @classmethod
    def pending(cls, files: Files, system_path: str, app_id: str, done: int) -> BatchPlan | None:
        """The saved plan of `app_id` when its batch is after `done` (the last batch known complete), else None."""
        text = files.read(cls.uri(system_path, app_id))
        if not text:
            return None
        doc = json.loads(text)
        if int(doc["batch"]) <= done:
            return None
        return cls(app_id, int(doc["batch"]), {str(p): int(ms) for p, ms in doc["files"].items()},
                   {str(t): int(v) for t, v in doc["versions"].items()}, replay=True)

    def save(self, files: Files, system_path: str) -> None:
        doc = {"batch": self.batch, "files": self.files, "versions": self.versions}
        files.write(self.uri(system_path, self.app_id), json.dumps(doc, separators=(",", ":")))
