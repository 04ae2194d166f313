"""Landing discovery without Spark: the local listing (hidden names, month bounds), the index's versions
(ETag and time), its cache, the queue's message shapes, the month arithmetic and reconciliation's schedule."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from lakehouse.config import load_settings
from lakehouse.errors import ConfigError
from lakehouse.record import queue
from lakehouse.record.discovery import Discovery, months_before, reconcile_due
from lakehouse.record.landing import BatchPlan, LandedIndex, Version, _plan_version
from lakehouse.record.listing import Listed, list_landing, utc_millis, wanted


def touch(root: Path, rel: str, mtime_ns: int = 1_600_000_000_123_000_000) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    for rel in ("song_data/A/B/C/TRABC1.json", "song_data/A/B/D/TRABD1.json", "song_data/A/_tmp/TRX.json",
                "song_data/A/.hidden.json", "song_data/A/B/C/notes.txt", "song_data/A/B/C/TRABC2.json._COPYING_",
                "log_data/2018/10/2018-10-31-events.json", "log_data/2018/11/2018-11-01-events.json",
                "log_data/2019/01/2019-01-02-events.json", "log_data/2017/12/2017-12-31-events.json",
                "log_data/late/extra.json"):
        touch(tmp_path, rel)
    return tmp_path


def rel(zone: Path, listed: list[Listed]) -> list[str]:
    return sorted(e.path.removeprefix(f"file:{zone}/") for e in listed)


def test_the_local_listing_leaves_out_what_spark_leaves_out(zone: Path) -> None:
    listed = list(list_landing(f"file:{zone}"))
    assert rel(zone, listed) == ["log_data/2017/12/2017-12-31-events.json", "log_data/2018/10/2018-10-31-events.json",
                                 "log_data/2018/11/2018-11-01-events.json", "log_data/2019/01/2019-01-02-events.json",
                                 "log_data/late/extra.json", "song_data/A/B/C/TRABC1.json", "song_data/A/B/D/TRABD1.json"]
    one = next(e for e in listed if e.path.endswith("TRABC1.json"))
    assert (one.source, one.modified_ms, one.etag, one.size) == ("song_data", 1_600_000_000_123, None, 2)
    assert wanted("A/B/x.json") and not wanted("A/_x/y.json") and not wanted("A/b=1/_SUCCESS") and wanted("y=1/x.json")


def test_a_dated_source_is_listed_from_a_month_on(zone: Path) -> None:
    listed = list(list_landing(f"file:{zone}", ["log_data"], months_from={"log_data": (2018, 11)}))
    # Months before November 2018 are not listed; a folder that is no date is listed whole.
    assert rel(zone, listed) == ["log_data/2018/11/2018-11-01-events.json", "log_data/2019/01/2019-01-02-events.json",
                                 "log_data/late/extra.json"]


def test_months_before_and_the_reconcile_schedule() -> None:
    assert months_before((2018, 11), 1) == (2018, 10) and months_before((2018, 1), 1) == (2017, 12)
    assert months_before((2018, 3), 14) == (2017, 1) and months_before((2018, 3), 0) == (2018, 3)
    now = datetime(2026, 12, 3, tzinfo=timezone.utc)
    assert reconcile_due({}, 7, now) and not reconcile_due({}, 0, now)
    assert not reconcile_due({"reconciled_at": (now - timedelta(days=6)).isoformat()}, 7, now)
    assert reconcile_due({"reconciled_at": (now - timedelta(days=7)).isoformat()}, 7, now)


def test_versions_are_the_same_by_etag_or_by_time_where_an_etag_is_unknown() -> None:
    index = LandedIndex(3)
    index.add([("s3a://b/l/song_data/a.json", 1000, "e1"), ("s3a://b/l/song_data/old.json", 2000, None),
               ("s3a://b/l/song_data/my%20song.json", 3000, "e3")])
    listed = [Listed("song_data", "s3a://b/l/song_data/a.json", 1000, "e1", 1),  # the same
              Listed("song_data", "s3a://b/l/song_data/a.json", 5000, "e1", 1),  # touched, same content: the same
              Listed("song_data", "s3a://b/l/song_data/old.json", 2000, "e9", 1),  # recorded before ETags: by time
              Listed("song_data", "s3a://b/l/song_data/my song.json", 3000, "e3", 1),  # Spark's name is encoded
              Listed("song_data", "s3a://b/l/song_data/new.json", 1, "n", 1)]
    compared = index.compare(listed)
    assert compared.new == {"song_data": {"s3a://b/l/song_data/new.json": Version(1, "n")}} and compared.moved == {}
    assert compared.seen == {"song_data": 5}
    again = index.compare([Listed("song_data", "s3a://b/l/song_data/a.json", 1000, "e2", 1),  # same second, other content
                           Listed("song_data", "s3a://b/l/song_data/old.json", 2001, "e9", 1),
                           Listed("song_data", "s3a://b/l/song_data/my song.json", 3000, "e4", 1)])
    assert again.moved == {"song_data": {"s3a://b/l/song_data/a.json": Version(1000, "e2"), "s3a://b/l/song_data/old.json": Version(2001, "e9"),
                                         "s3a://b/l/song_data/my%20song.json": Version(3000, "e4")}}
    assert index.knows_etag("s3a://b/l/song_data/a.json", "e1") and not index.knows_etag("s3a://b/l/song_data/old.json", "e9")
    assert index.latest("s3a://b/l/song_data/my%20song.json") == 3000


def test_the_index_cache_round_trips_and_refuses_other_text() -> None:
    index = LandedIndex(7)
    index.add([("file:/l/song_data/a.json", 1, None), ("file:/l/song_data/a.json", 2, "x"), ("file:/l/log_data/2018/11/b%2B.json", 3, "y")])
    back = LandedIndex.loads(index.dumps())
    assert back is not None and (back.version, back.files, back.spark_names) == (7, index.files, index.spark_names)
    assert back.versions("file:/l/song_data/a.json") == [Version(1), Version(2, "x")]
    assert back.newest_month("file:/l/log_data") == (2018, 11) and back.count_under("file:/l/song_data") == 1
    assert LandedIndex.loads('{"version": 1, "files": []}') is None and LandedIndex.loads("garbage") is None
    assert LandedIndex.loads(index.dumps().rsplit("\n", 2)[0] + "\n") is None  # truncated


def test_plans_saved_before_etags_still_replay() -> None:
    assert _plan_version(1234) == Version(1234) and _plan_version([1234, "e"]) == Version(1234, "e")
    assert _plan_version([5, None]) == Version(5)
    plan = BatchPlan("g0/songs_raw/batches", 3, {"s3a://b/x.json": Version(9, "e")}, {"bronze.songs_raw": 2})
    saved: dict[str, str] = {}

    class Files:
        def write(self, uri: str, text: str) -> None:
            saved[uri] = text

        def read(self, uri: str) -> str | None:
            return saved.get(uri)

    plan.save(Files(), "sys")  # type: ignore[arg-type]
    again = BatchPlan.pending(Files(), "sys", plan.app_id, 2)  # type: ignore[arg-type]
    assert again is not None and again.files == plan.files and again.replay


S3_EVENT = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                         "s3": {"bucket": {"name": "land"}, "object": {"key": "zone/song_data/A/my+song%2B1.json", "size": 12,
                                                                      "eTag": "abc", "sequencer": "0A1"}}},
                        {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete",
                         "s3": {"bucket": {"name": "land"}, "object": {"key": "zone/log_data/x.json"}}}]}


def test_both_message_shapes_the_test_event_and_anything_else() -> None:
    shape, events = queue.parse(json.dumps(S3_EVENT))
    assert shape == "s3" and events == [queue.Event("land", "zone/song_data/A/my song+1.json", True, "abc", 12, "0A1"),
                                        queue.Event("land", "zone/log_data/x.json", False)]
    wrapped = {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": json.dumps(S3_EVENT)}
    assert queue.parse(json.dumps(wrapped)) == ("sns", events)
    assert queue.parse(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "land"})) == ("test", [])
    broken = '{"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": 1}]}'
    for junk in ("not json", "[]", broken, json.dumps({"Type": "Notification", "Message": "{"})):
        assert queue.parse(junk) == ("unreadable", []), junk
    journal = queue.dumps("http://q", "run-1", [queue.Message("m1", "r1", "s3", events)])
    assert queue.loads(journal, "http://q") == [queue.Message("m1", "r1", "s3", events)]
    assert queue.loads(journal, "http://other") == [] and queue.loads("{", "http://q") == []


def test_queue_mode_needs_an_s3_source_and_a_queue() -> None:
    settings = load_settings("local", {"source": "/tmp/landing", "warehouse": "/tmp/wh"}, environ={})
    with pytest.raises(ConfigError, match="needs an s3a:// source"):
        Discovery(dataclasses.replace(settings, discovery="queue", queue_url="http://q"), LandedIndex(-1), ["log_data"], {})
    with pytest.raises(ConfigError, match=r"needs queue\.url"):
        Discovery(dataclasses.replace(settings, source="s3a://land/zone", discovery="queue"), LandedIndex(-1), ["log_data"], {})
    with pytest.raises(ConfigError, match="discovery 'inotify' is not one of list, queue"):
        load_settings("local", {}, environ={"LAKEHOUSE_DISCOVERY": "inotify"})


def test_a_bounded_listing_goes_back_from_the_newest_month_recorded(zone: Path) -> None:
    settings = dataclasses.replace(load_settings("local", {"source": str(zone), "warehouse": str(zone / "wh")}, environ={}),
                                   listing_date_bounded=True, listing_lookback_months=1, reconcile_every_days=7)
    index = LandedIndex(1)
    index.add([(e.path, e.modified_ms, None) for e in list_landing(settings.source) if "2019" not in e.path and "late" not in e.path])
    late = touch(zone, "log_data/2018/09/2018-09-30-events.json")  # a late file in an old month
    fresh = {"reconciled_at": datetime.now(timezone.utc).isoformat()}
    found = Discovery(settings, index, ["song_data", "log_data"], fresh).run()
    assert found.how == "list log_data from 2018/10" and not found.reconciled
    assert sorted(found.compared.new["log_data"]) == [f"file:{zone}/log_data/2019/01/2019-01-02-events.json", f"file:{zone}/log_data/late/extra.json"]
    # Reconciliation (due, or asked for) lists everything and names the file the bounded listing missed.
    found = Discovery(settings, index, ["song_data", "log_data"], fresh).run(reconcile=True)
    assert found.reconciled and found.missed == {"log_data": [f"file:{late}"]}
    assert found.details(settings.source)["reconcile"] == {"missed": 1, "files": ["log_data/2018/09/2018-09-30-events.json"]}
    assert Discovery(settings, index, ["log_data"], {}).run().reconciled  # never reconciled: due


def test_utc_millis_is_exact() -> None:
    assert utc_millis(datetime(2026, 1, 2, 3, 4, 5, 678_999, tzinfo=timezone.utc)) == 1767323045678
    assert utc_millis(datetime(1970, 1, 1, tzinfo=timezone.utc)) == 0


def test_a_message_received_twice_is_deleted_once_by_its_latest_receipt() -> None:
    batches: list[list[dict[str, str]]] = []

    class Sqs:
        def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
            batches.append(Entries)
            return {"Failed": []}

    messages = [queue.Message(f"m{i}", f"r{i}", "s3") for i in range(12)] + [queue.Message("m3", "r3-again", "s3")]
    assert queue.acknowledge(Sqs(), "http://q", messages) == 0
    handles = [e["ReceiptHandle"] for batch in batches for e in batch]
    assert [len(b) for b in batches] == [10, 2] and sorted(handles) == sorted([f"r{i}" for i in range(12) if i != 3] + ["r3-again"])
