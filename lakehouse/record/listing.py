"""The landing zone listed on the driver, without Spark: a local folder with os.scandir, S3 in ListObjectsV2 pages.

On S3 every object comes with its key, size, LastModified and ETag from the listing itself: no request per
object. A source folder is split at its first level (`song_data/A/`, `song_data/B/`, ...) and the parts
are listed in parallel, each a flat paged listing. A dated source (`log_data/YYYY/MM/`) can be listed from
one month on (`months_from`): its year and month folders are listed with a delimiter and only the months
from that one on are listed in full. Names Spark's file listing skips (`_x`, `.x`, `x._COPYING_`) and
names not ending in `.json` are left out, as Spark leaves them out when it reads a folder.

`list_landing` is what a run, `lakehouse reconcile` and `lakehouse sources pending` call.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from lakehouse.storage import S3Client

LIST_THREADS = 16
PAGE_BUFFER = 64  # pages listed ahead of the consumer (bounded memory whatever the bucket holds)
SOURCES = ("song_data", "log_data")
DATED = "log_data"  # the source whose folders are YYYY/MM/
YEAR, MONTH = re.compile(r"\d{4}"), re.compile(r"\d{2}")

Month = tuple[int, int]


class Listed(NamedTuple):
    """One landed file: its source, its path (`file:/...` or `s3a://bucket/key`, not percent-encoded), its version."""

    source: str
    path: str
    modified_ms: int
    etag: str | None  # S3's ETag without quotes; None for a local file
    size: int


def hidden(name: str) -> bool:
    """Names Spark's file listing skips (InMemoryFileIndex): `_x` (but not `k=v`), `.x`, uploads in progress."""
    return (name.startswith("_") and "=" not in name) or name.startswith(".") or name.endswith("._COPYING_")


def wanted(relative: str) -> bool:
    """Whether a path relative to its source folder is a file Spark reads: `*.json`, no hidden part."""
    if not relative.endswith(".json"):
        return False
    if "/_" not in relative and "/." not in relative and relative[:1] not in ("_", "."):
        return True  # nothing hidden: the usual case, a million times per listing
    return not any(hidden(p) for p in relative.split("/") if p)


def month_of(name: str) -> int | None:
    """A folder name as a year or a month number (None when it is neither)."""
    return int(name) if YEAR.fullmatch(name) or MONTH.fullmatch(name) else None


def utc_millis(value: datetime) -> int:
    """Epoch milliseconds of an aware (or naive UTC) datetime, exactly."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp()) * 1000 + value.microsecond // 1000  # whole seconds are exact in a float


def list_landing(source_uri: str, names: Iterable[str] = SOURCES, months_from: Mapping[str, Month] | None = None,
                 client: S3Client | None = None, threads: int = LIST_THREADS) -> Iterator[Listed]:
    """Every file of the sources `names` under `source_uri` (local path URI `file:/...` or `s3a://bucket/prefix`).

    `months_from`: per dated source, the first (year, month) to list; older month folders are not listed.
    `client`: the boto3 S3 client to list with (default: the shared one). Files come in no particular order.
    """
    bounds = dict(months_from or {})
    if source_uri.startswith("file:"):
        root = source_uri[len("file:"):]
        for name in names:
            yield from _walk_local(name, os.path.join(root, name), bounds.get(name), top=True)
        return
    from lakehouse.storage import shared_s3_client, split_s3a

    bucket, prefix = split_s3a(source_uri)
    s3 = client or shared_s3_client()
    yield from _S3Listing(s3, bucket, prefix, threads).run(list(names), bounds)


# ---------------------------------------------------------------------------------------- local
def _walk_local(source: str, folder: str, since: Month | None, top: bool = False, year: int | None = None) -> Iterator[Listed]:
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if hidden(entry.name):
            continue
        if entry.is_dir(follow_symlinks=True):
            number = month_of(entry.name)
            if since is not None and number is not None and top and len(entry.name) == 4:
                if number < since[0]:
                    continue
                yield from _walk_local(source, entry.path, since, year=number)
            elif since is not None and number is not None and year is not None and len(entry.name) == 2:
                if (year, number) >= since:
                    yield from _walk_local(source, entry.path, None)
            else:
                yield from _walk_local(source, entry.path, None)
        elif entry.name.endswith(".json"):
            stat = entry.stat()
            yield Listed(source, "file:" + entry.path, stat.st_mtime_ns // 1_000_000, None, stat.st_size)


# ---------------------------------------------------------------------------------------- S3
class _S3Listing:
    """Plan the prefixes of the sources (a few delimiter listings), then list each in full, in parallel."""

    def __init__(self, s3: S3Client, bucket: str, prefix: str, threads: int) -> None:
        self.s3, self.bucket, self.threads = s3, bucket, max(1, threads)
        self.base = f"{prefix}/" if prefix else ""

    def entry(self, source: str, obj: Mapping[str, Any]) -> Listed | None:
        key = obj["Key"]
        if not wanted(key[len(self.base) + len(source) + 1:]):
            return None
        etag = (obj.get("ETag") or "").strip('"') or None
        return Listed(source, f"s3a://{self.bucket}/{key}", utc_millis(obj["LastModified"]), etag, obj.get("Size") or 0)

    def level(self, prefix: str) -> tuple[list[Mapping[str, Any]], list[str]]:
        """The objects and the child folders right under `prefix` (a delimiter listing, paged)."""
        objects: list[Mapping[str, Any]] = []
        folders: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            objects += page.get("Contents", [])
            folders += [str(p["Prefix"]) for p in page.get("CommonPrefixes", [])]
        return objects, folders

    def plan(self, source: str, since: Month | None) -> tuple[list[Listed], list[str]]:
        """Files at the source's top levels, and the folders to list in full (their whole subtree each)."""
        folder = f"{self.base}{source}/"
        objects, children = self.level(folder)
        files = [e for e in (self.entry(source, o) for o in objects) if e is not None]
        todo: list[str] = []
        for child in children:
            name = child[len(folder):].rstrip("/")
            year = month_of(name) if len(name) == 4 else None
            if hidden(name):
                continue
            if since is None or year is None or year > since[0]:
                todo.append(child)
            elif year == since[0]:
                objects, months = self.level(child)
                files += [e for e in (self.entry(source, o) for o in objects) if e is not None]
                for month_folder in months:
                    month_name = month_folder[len(child):].rstrip("/")
                    month = month_of(month_name) if len(month_name) == 2 else None
                    if month is None or month >= since[1]:
                        todo.append(month_folder)
        return files, todo

    def run(self, names: list[str], bounds: Mapping[str, Month]) -> Iterator[Listed]:
        pages: queue.Queue[list[Listed] | BaseException | None] = queue.Queue(maxsize=PAGE_BUFFER)
        stop = threading.Event()

        def put(item: list[Listed] | BaseException | None) -> None:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue

        def list_all(source: str, prefix: str) -> None:
            try:
                for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                    if stop.is_set():
                        return
                    put([e for e in (self.entry(source, o) for o in page.get("Contents", [])) if e is not None])
            except BaseException as exc:  # handed to the consumer, which raises it
                put(exc)
            finally:
                put(None)

        tasks: list[Callable[[], None]] = []
        for source in names:
            files, folders = self.plan(source, bounds.get(source))
            yield from files
            tasks += [lambda s=source, f=folder: list_all(s, f) for folder in folders]  # type: ignore[misc]
        if not tasks:
            return
        pool = ThreadPoolExecutor(min(self.threads, len(tasks)), thread_name_prefix="s3-list")
        try:
            for task in tasks:
                pool.submit(task)
            finished = 0
            while finished < len(tasks):
                item = pages.get()
                if item is None:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield from item
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
