"""How a run finds what landed (setting `discovery`), and reconciliation: on the driver, without Spark.

- `list`: the landing zone listed in pages (lakehouse.record.listing) and compared with the index of
  bronze.landed_files. With `listing.date_bounded`, `log_data/YYYY/MM/` is listed only from the newest
  month recorded (minus `listing.lookback_months`) on; its blind spot is a late file in an older month.
- `queue`: the S3 event notifications waiting in SQS (lakehouse.record.queue); a key whose ETag the index
  holds is a duplicate, a key only removed is nothing, any other key is checked with one HEAD (gone: it was
  deleted since; else its version, compared with the index like a listed file). The first run after
  switching to a queue also lists once, so that no file that landed before the queue was wired is missed.
- reconciliation (`lakehouse reconcile`, or a run when the last one is `reconcile.every_days` old): a full
  listing beside the mode's own discovery; the files the listing finds and the mode did not are the
  *missed* ones: ingested with the others, and counted. A plain `list` run is a full listing: it misses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from lakehouse.errors import ConfigError
from lakehouse.record import queue
from lakehouse.record.landing import Compared, LandedIndex
from lakehouse.record.listing import DATED, Listed, Month, list_landing, utc_millis, wanted
from lakehouse.storage import RequestCount

if TYPE_CHECKING:
    from lakehouse.config import Settings
    from lakehouse.storage import S3Client

log = logging.getLogger(__name__)

HEAD_THREADS = 16
MISSED_SHOWN = 20  # missed files named in the run log and on the dashboard


@dataclass
class Found:
    """What discovery found: new and re-uploaded files, the queue's messages to delete after the commit, figures."""

    compared: Compared
    how: str  # what was done, e.g. "list", "list log_data from 2018/11", "queue", "queue + full listing"
    in_folder: dict[str, int] = field(default_factory=dict)  # files per source folder (listed, or recorded + new)
    messages: list[queue.Message] = field(default_factory=list)
    reconciled: bool = False  # a full listing was compared with the index
    missed: dict[str, list[str]] = field(default_factory=dict)  # reconciliation: source -> files the mode missed
    figures: dict[str, int] = field(default_factory=dict)  # listed, events, duplicates, removed, gone, ...
    requests: dict[str, int] = field(default_factory=dict)  # by kind: LIST, HEAD, GET, SQS

    def missed_count(self) -> int:
        return sum(len(v) for v in self.missed.values())

    def details(self, source_uri: str) -> dict[str, Any]:
        """For ops.runs: the mode, its figures and requests; reconciliation's count and the first files missed."""
        out: dict[str, Any] = {"how": self.how, **self.figures, "requests": self.requests}
        if self.reconciled:
            names = sorted(p.removeprefix(source_uri + "/") for paths in self.missed.values() for p in paths)
            out["reconcile"] = {"missed": len(names), "files": names[:MISSED_SHOWN]}
        return out


def months_before(month: Month, count: int) -> Month:
    index = month[0] * 12 + month[1] - 1 - count
    return index // 12, index % 12 + 1


def reconcile_due(state: dict[str, str], every_days: int, now: datetime) -> bool:
    """Whether the last reconciliation (state["reconciled_at"], ISO) is `every_days` old (never, with 0)."""
    if every_days <= 0:
        return False
    last = state.get("reconciled_at")
    if not last:
        return True
    try:
        return now - datetime.fromisoformat(last) >= timedelta(days=every_days)
    except ValueError:
        return True


class Discovery:
    """One run's discovery of the sources `names` of the landing zone, against `index`."""

    def __init__(self, settings: Settings, index: LandedIndex, names: Iterable[str], state: dict[str, str],
                 s3: S3Client | None = None, sqs: Any | None = None) -> None:
        self.settings, self.index, self.names, self.state = settings, index, list(names), state
        self.s3, self.sqs = s3, sqs
        self.is_s3 = settings.source.startswith("s3a://")
        if settings.discovery == "queue":
            if not self.is_s3:
                raise ConfigError(f"discovery = queue needs an s3a:// source, not {settings.source}")
            if not settings.queue_url:
                raise ConfigError("discovery = queue needs queue.url (`lakehouse sources setup-queue` prints it)")

    def folder(self, name: str) -> str:
        return f"{self.settings.source}/{name}"

    def run(self, reconcile: bool = False, journal: list[queue.Message] | None = None, list_all: bool = False,
            now: datetime | None = None) -> Found:
        """Find what landed; `reconcile` forces a reconciliation, `journal` holds messages a stopped run left.

        `list_all`: list the whole landing zone whatever the mode, without counting what the mode missed
        (bronze is being ingested again from the landing zone: `run full --reingest`).
        """
        now = now or datetime.now(timezone.utc)
        due = reconcile or reconcile_due(self.state, self.settings.reconcile_every_days, now)
        counter = RequestCount()
        if self.is_s3:
            from lakehouse.storage import shared_s3_client, sqs_client

            self.s3 = self.s3 or shared_s3_client()
            if self.settings.discovery == "queue":
                self.sqs = self.sqs or sqs_client()
                counter.attach(self.s3, self.sqs)
            else:
                counter.attach(self.s3)
        try:
            if self.settings.discovery == "queue":
                found = self._queue(due, journal or [], list_all)
            elif self.settings.listing_date_bounded and not list_all:
                found = self._bounded(due)
            else:
                found = self._listed(self.index.compare(self._list()), "list", listed=True)
        finally:
            counter.detach()
        found.requests = dict(sorted(counter.counts.items()))
        for name in self.names:  # what the batch read is planned by (lakehouse.record.ingest.Ingest.read_batch)
            if name not in found.in_folder and found.compared.new.get(name):
                found.in_folder[name] = self.index.count_under(self.folder(name)) + len(found.compared.new.get(name, {}))
        return found

    def _list(self, months_from: dict[str, Month] | None = None) -> Iterable[Listed]:
        return list_landing(self.settings.source, self.names, months_from, client=self.s3)

    def _listed(self, compared: Compared, how: str, listed: bool) -> Found:
        """A Found of a full listing (`listed`: it is a reconciliation too, one that misses nothing)."""
        found = Found(compared, how, reconciled=listed)
        found.figures["listed"] = sum(compared.seen.values())
        if listed:
            found.in_folder = dict(compared.seen)
        return found

    # ------------------------------------------------------------------ list, date-bounded
    def _bounded(self, due: bool) -> Found:
        since: dict[str, Month] = {}
        if DATED in self.names:
            newest = self.index.newest_month(self.folder(DATED))
            if newest is not None:
                since[DATED] = months_before(newest, self.settings.listing_lookback_months)
        if not since:  # nothing dated recorded yet: the whole landing zone
            return self._listed(self.index.compare(self._list()), "list", listed=True)
        part = self.index.compare(self._list(since))
        how = f"list {DATED} from {since[DATED][0]:04d}/{since[DATED][1]:02d}"
        if not due:
            found = Found(part, how)
            found.figures["listed"] = sum(part.seen.values())
            return found
        full = self.index.compare(self._list())
        found = self._listed(full, f"{how} + full listing (reconciliation)", listed=True)
        found.missed = _missed(full, part)
        return found

    # ------------------------------------------------------------------ queue
    def _queue(self, due: bool, journal: list[queue.Message], list_all: bool) -> Found:
        url = self.settings.queue_url
        messages = journal + queue.drain(self.sqs, url, self.settings.queue_visibility_seconds)
        compared, figures = self._from_events(messages)
        first = self.state.get("queue") != url or list_all
        found = Found(compared, "queue", messages=messages, figures=figures)
        if first or due:
            full = self.index.compare(self._list())
            if not first:
                found.missed = _missed(full, compared)
            found.compared.merge(full)
            found.compared.seen = dict(full.seen)
            found.in_folder = dict(full.seen)
            found.reconciled = True
            found.figures["listed"] = sum(full.seen.values())
            found.how = "queue + first listing" if first else "queue + full listing (reconciliation)"
        return found

    def _from_events(self, messages: list[queue.Message]) -> tuple[Compared, dict[str, int]]:
        """The keys the events name, sorted out against the index; a HEAD for each key not known by its ETag."""
        from lakehouse.storage import split_s3a

        bucket, prefix = split_s3a(self.settings.source)
        base = f"{prefix}/" if prefix else ""
        figures = {"messages": len(messages), "events": 0, "duplicates": 0, "removed": 0, "gone": 0, "checked": 0,
                   "ignored": 0, "test": sum(m.shape == "test" for m in messages),
                   "unreadable": sum(m.shape == "unreadable" for m in messages)}
        by_key: dict[str, list[queue.Event]] = {}
        for m in messages:
            for e in m.events:
                figures["events"] += 1
                if e.bucket == bucket:
                    by_key.setdefault(e.key, []).append(e)
        todo: list[tuple[str, str]] = []  # (source, key)
        for key, events in by_key.items():
            source = next((n for n in self.names if key.startswith(f"{base}{n}/") and wanted(key[len(f"{base}{n}/"):])), None)
            if source is None:
                figures["ignored"] += 1
                continue
            created = {e.etag for e in events if e.created}
            if not created:
                figures["removed"] += 1
            elif all(etag and self.index.knows_etag(f"s3a://{bucket}/{key}", etag) for etag in created):
                figures["duplicates"] += 1
            else:
                todo.append((source, key))
        figures["checked"] = len(todo)
        with ThreadPoolExecutor(HEAD_THREADS, thread_name_prefix="s3-head") as pool:
            heads = list(pool.map(lambda sk: self._head(bucket, *sk), todo))
        present = [h for h in heads if h is not None]
        figures["gone"] = len(heads) - len(present)
        compared = self.index.compare(present)
        figures["duplicates"] += len(present) - sum(len(v) for v in compared.new.values()) - sum(len(v) for v in compared.moved.values())
        compared.seen = {}
        return compared, figures

    def _head(self, bucket: str, source: str, key: str) -> Listed | None:
        """The object's current version (None when it is gone)."""
        from botocore.exceptions import ClientError

        assert self.s3 is not None
        try:
            head = self.s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return Listed(source, f"s3a://{bucket}/{key}", utc_millis(head["LastModified"]), str(head.get("ETag") or "").strip('"') or None,
                      int(head.get("ContentLength") or 0))


def _missed(full: Compared, found: Compared) -> dict[str, list[str]]:
    """Per source, the files a full listing found new or changed that discovery did not."""
    seen = found.paths()
    missed: dict[str, list[str]] = {}
    for source, files in full.new.items():
        missed.setdefault(source, []).extend(p for p in files if p not in seen)
    for source, files in full.moved.items():
        missed.setdefault(source, []).extend(unquote(p) for p in files if unquote(p) not in seen)
    return {s: sorted(p) for s, p in missed.items() if p}
