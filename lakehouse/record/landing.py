"""What the landing zone holds against what bronze has recorded of it, compared on the driver.

A run first finds what landed (lakehouse.record.discovery: a listing in pages, lakehouse.record.listing,
or the S3 event notifications of a queue) and compares it with `bronze.landed_files`, read from a copy
cached beside the pipeline state and keyed by the table's version (no Spark job while it is current).
Files bronze has not recorded make the next batch; files recorded under another version are the
re-uploads. A version is the file's modification time (ms) and, on S3, its ETag: two versions are the
same when their ETags are equal, or, where either ETag is unknown (local files, rows recorded before
the ETag was), when their modification times are. When nothing landed, bronze costs no Spark job at all.

Exactly once: a batch's file list (`BatchPlan`) is saved before the batch is written, and every commit
of the batch is marked with it. A run that stops half-way leaves the plan behind; the next run replays
the same files under the same batch number and skips the commits the first attempt made.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

from lakehouse import tables as T

if TYPE_CHECKING:
    from lakehouse.record.listing import Listed
    from lakehouse.state import Files

log = logging.getLogger(__name__)

CACHE_FORMAT = 2


class Version(NamedTuple):
    """One version of a landed file: its modification time (epoch ms) and its ETag (None when unknown)."""

    ms: int
    etag: str | None = None


def millis(value: datetime) -> int:
    """Epoch milliseconds of a timestamp as PySpark returns it (naive, in this process's local time)."""
    return round(value.timestamp() * 1000)


def from_millis(ms: int) -> datetime:
    """The naive local timestamp PySpark reads and writes for epoch milliseconds `ms` (exact to the ms)."""
    return datetime.fromtimestamp(ms // 1000).replace(microsecond=(ms % 1000) * 1000)


def _pack(version: Version) -> str:
    return f"{version.ms}:{version.etag}" if version.etag else str(version.ms)


def _unpack(text: str) -> Iterator[Version]:
    for part in text.split("|"):
        ms, _, etag = part.partition(":")
        yield Version(int(ms), etag or None)


def same(a: Version, b: Version) -> bool:
    """Whether two versions of one file are the same: equal ETags, or equal times where an ETag is unknown."""
    if a.etag and b.etag:
        return a.etag == b.etag
    return a.ms == b.ms


@dataclass
class Compared:
    """A listing (or the files a queue named) against the index: what is new, what landed again, how many were seen."""

    new: dict[str, dict[str, Version]] = field(default_factory=dict)  # source -> decoded path -> version
    moved: dict[str, dict[str, Version]] = field(default_factory=dict)  # source -> Spark's path -> new version
    seen: dict[str, int] = field(default_factory=dict)  # source -> files compared

    def paths(self) -> set[str]:
        """The decoded paths of every new or re-uploaded file."""
        return {p for files in self.new.values() for p in files} | {unquote(p) for files in self.moved.values() for p in files}

    def merge(self, other: Compared) -> None:
        for mine, theirs in ((self.new, other.new), (self.moved, other.moved)):
            for source, files in theirs.items():
                mine.setdefault(source, {}).update(files)


@dataclass
class LandedIndex:
    """`bronze.landed_files` at one table version: per file (decoded path), the versions recorded.

    Compact for a million files: one string per path ("ms:etag|ms:etag"), Spark's percent-encoded
    name kept only where it differs from the decoded path.
    """

    version: int
    files: dict[str, str] = field(default_factory=dict)
    spark_names: dict[str, str] = field(default_factory=dict)
    changed: bool = False  # differs from the cached copy

    def __len__(self) -> int:
        return len(self.files)

    def add(self, rows: Iterable[tuple[str, int, str | None]]) -> None:
        """Record (path as Spark names it, modified ms, ETag or None) rows."""
        for path, ms, etag in rows:
            key = unquote(path)
            if key != path:
                self.spark_names[key] = path
            packed = _pack(Version(ms, etag))
            known = self.files.get(key)
            if known is None:
                self.files[key] = packed
            elif packed not in known.split("|"):
                self.files[key] = f"{known}|{packed}"
            self.changed = True

    def versions(self, path: str) -> list[Version]:
        """The versions recorded of a file (decoded path); none when it was never recorded."""
        known = self.files.get(path)
        return list(_unpack(known)) if known is not None else []

    def knows(self, path: str, version: Version) -> bool:
        known = self.files.get(path)
        if known is None:
            return False
        if known == _pack(version):  # the usual case: one version, the same
            return True
        return any(same(v, version) for v in _unpack(known))

    def knows_etag(self, path: str, etag: str) -> bool:
        """Whether a version of the file with this ETag is recorded (a queue's event names no time)."""
        known = self.files.get(path)
        return known is not None and f":{etag}" in known and any(v.etag == etag for v in _unpack(known))

    def count_under(self, folder: str) -> int:
        """Files recorded under `folder` (a source folder URI)."""
        start = folder.rstrip("/") + "/"
        return sum(1 for path in self.files if path.startswith(start))

    def spark_name(self, path: str) -> str:
        return self.spark_names.get(path, path)

    def compare(self, listing: Iterable[Listed]) -> Compared:
        """Files never recorded (new) and recorded files of another version (moved), per source."""
        out = Compared()
        files, seen = self.files, out.seen
        for source, path, ms, etag, _ in listing:  # a million times per run: the usual case costs a lookup and a compare
            seen[source] = seen.get(source, 0) + 1
            known = files.get(path)
            if known is not None and known == (f"{ms}:{etag}" if etag else str(ms)):
                continue
            version = Version(ms, etag)
            if known is None:
                out.new.setdefault(source, {})[path] = version
            elif not self.knows(path, version):
                out.moved.setdefault(source, {})[self.spark_name(path)] = version
        return out

    def latest(self, path: str) -> int:
        """The newest modification time recorded for a path (decoded, or as Spark names it)."""
        return max(v.ms for v in self.versions(unquote(path)))

    def newest_month(self, folder: str) -> tuple[int, int] | None:
        """The latest (year, month) of the recorded files under `folder` (a dated source: folder/YYYY/MM/...)."""
        from lakehouse.record.listing import month_of

        start = folder.rstrip("/") + "/"
        best: tuple[int, int] | None = None
        for path in self.files:
            if path.startswith(start):
                parts = path[len(start):].split("/")
                if len(parts) >= 3 and len(parts[0]) == 4 and len(parts[1]) == 2:
                    year, month = month_of(parts[0]), month_of(parts[1])
                    if year is not None and month is not None and (best is None or (year, month) > best):
                        best = (year, month)
        return best

    # ------------------------------------------------------------------ cache beside the pipeline state
    @staticmethod
    def cache_uri(system_path: str) -> str:
        return f"{system_path}/landed_files.index"

    def dumps(self) -> str:
        """The cache's text: a JSON header line, then `path<TAB>versions[<TAB>Spark's name]` per file."""
        out = io.StringIO()
        out.write(json.dumps({"format": CACHE_FORMAT, "version": self.version, "files": len(self.files)}) + "\n")
        for path in sorted(self.files):
            spark = self.spark_names.get(path)
            out.write(f"{path}\t{self.files[path]}" + (f"\t{spark}\n" if spark else "\n"))
        return out.getvalue()

    @classmethod
    def loads(cls, text: str) -> LandedIndex | None:
        """The index a cache holds, or None when the text is not a cache of this format."""
        lines = text.split("\n")  # measured at a million files: 400 MB at the peak, where io.StringIO took 770 MB
        try:
            header = json.loads(lines[0])
            if header.get("format") != CACHE_FORMAT:
                return None
            index = cls(int(header["version"]))
            del lines[0]
            if lines and not lines[-1]:
                lines.pop()
            files = index.files = dict(line.split("\t", 1) for line in lines)  # type: ignore[misc]
            del lines
            for path in [p for p, packed in files.items() if "\t" in packed]:  # Spark's name, where it differs
                files[path], _, index.spark_names[path] = files[path].partition("\t")
            if len(files) != int(header["files"]):
                return None
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return index

    @classmethod
    def load(cls, wh: T.Warehouse, files: Files, system_path: str) -> LandedIndex:
        """The index at the table's current version: the cached copy when current, else read from the table."""
        from pyspark.sql import functions as F

        version = wh.version(T.LANDED_FILES)
        cached = cls.from_cache(files.read(cls.cache_uri(system_path)), cls.cache_uri(system_path))
        if cached is not None and cached.version == version:
            return cached
        index = cls(version, changed=True)
        if version >= 0:
            rows = wh.read(T.LANDED_FILES).select("path", F.unix_millis("modified_at").alias("ms"), "etag").collect()
            index.add((r["path"], int(r["ms"]), r["etag"]) for r in rows)
        return index

    @classmethod
    def from_cache(cls, text: str | None, where: str = "the index cache") -> LandedIndex | None:
        """The cached copy (as of the table version it names), or None when there is none or it cannot be read."""
        if text is None:
            return None
        index = cls.loads(text)
        if index is None:
            log.warning("ignoring an unreadable %s", where)
        return index

    def save(self, files: Files, system_path: str, version: int) -> None:
        """Cache the index as of table `version` (every commit since it was loaded added through `add`)."""
        if not self.changed and version == self.version:
            return
        self.version = version
        files.write(self.cache_uri(system_path), self.dumps())
        self.changed = False


@dataclass
class BatchPlan:
    """The files of one bronze batch, saved before the batch is written, so that a replay reads the same files.

    Every commit of the batch carries `marker` in its userMetadata; `versions` holds each table's version
    when the plan was made, so a replay finds what its first attempt committed in the log after them.
    `files` maps each file's percent-decoded path to the version found (modification time, ETag).
    """

    app_id: str
    batch: int
    files: dict[str, Version]
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
        return cls(app_id, int(doc["batch"]), {str(p): _plan_version(v) for p, v in doc["files"].items()},
                   {str(t): int(v) for t, v in doc["versions"].items()}, replay=True)

    def save(self, files: Files, system_path: str) -> None:
        doc = {"batch": self.batch, "files": {p: list(v) for p, v in self.files.items()}, "versions": self.versions}
        files.write(self.uri(system_path, self.app_id), json.dumps(doc, separators=(",", ":")))


def _plan_version(value: int | list[int | str | None]) -> Version:
    """A plan's file version: [ms, etag], or the bare ms of plans saved before ETags were recorded."""
    if isinstance(value, list):
        return Version(int(value[0]), str(value[1]) if len(value) > 1 and value[1] else None)  # type: ignore[arg-type]
    return Version(int(value))
