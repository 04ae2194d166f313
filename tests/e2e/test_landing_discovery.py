"""Landing discovery end to end on the S3 test server (moto: S3, SQS and SNS over real HTTP, its request log).

One warehouse (local; the landing zone is on S3) goes through the modes in order, as an operator would: list
mode (against what Spark recorded, and a warehouse from before the ETag), then a queue wired to the bucket (the
first run lists once), faults injected at the client (duplicated, reordered, lost and re-delivered messages, an
object deleted, a crash between the commit and the messages' deletion), then `reconcile` as the run after the
crash; last, a new warehouse built in one list run over the same landing zone has the same bronze and gold
(full == incremental). Runs before the reconcile run write bronze only (silver and gold cost the suite's time
and do not depend on how files were found); the reconcile run brings silver and gold up to date.

The issue's figures (3,002 objects, nothing new: requests before and after), printed by the first test:
`LAKEHOUSE_TEST_LANDING_SONGS=3020 .venv/bin/python -m pytest tests/e2e/test_landing_discovery.py -k listing_in_pages -s`
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import unquote

import pytest
from pyspark.sql import functions as F

from lakehouse import storage
from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.flows.runner import FlowRunner
from lakehouse.generate import GenerateSpec, generate
from lakehouse.pipeline import Pipeline
from lakehouse.record import queue
from lakehouse.record.landing import LandedIndex
from lakehouse.record.listing import list_landing
from lakehouse.report import RunReport

from .helpers import cli_in_process
from .s3server import S3Server, moto_server, s3a_test_conf

pytestmark = pytest.mark.e2e

SONGS = int(os.environ.get("LAKEHOUSE_TEST_LANDING_SONGS", "60"))
SPEC = GenerateSpec(songs=SONGS, users=8, days=6, events_per_day=60, seed=23)
LANDING = "disc-landing"
SOURCE = f"s3a://{LANDING}/zone"
HELD_BACK = 20  # songs that land later, in the queue runs


@dataclasses.dataclass
class Lake:
    s3: S3Server
    spark: Any
    settings: Settings
    generated: Path
    client: Any
    queue_url: str = ""

    @property
    def songs(self) -> list[str]:
        return sorted(p.relative_to(self.generated).as_posix() for p in (self.generated / "song_data").rglob("*.json"))

    @property
    def days(self) -> list[str]:
        return sorted(p.relative_to(self.generated).as_posix() for p in (self.generated / "log_data").rglob("*.json"))

    def put(self, rel: str, body: bytes | None = None) -> None:
        self.client.put_object(Bucket=LANDING, Key=f"zone/{rel}", Body=body if body is not None else (self.generated / rel).read_bytes())

    def system(self, name: str) -> Path:
        """A file of the (local) warehouse's _system folder."""
        return Path(self.settings.system_path.removeprefix("file:")) / name

    def queued(self) -> Settings:
        return dataclasses.replace(self.settings, discovery="queue", queue_url=self.queue_url)

    def run(self, settings: Settings | None = None, reconcile: bool = False, flows: bool = False) -> RunReport:
        """An incremental run; silver and gold only with `flows` (discovery is bronze's: the last run catches them up)."""
        pipeline = Pipeline(self.spark, settings or self.settings)
        if flows:
            return pipeline.run("incremental", reconcile=reconcile)
        with mock.patch.object(FlowRunner, "run", lambda *_, **__: None):
            return pipeline.run("incremental", reconcile=reconcile)

    def bronze_versions(self) -> dict[str, int]:
        wh = T.Warehouse(self.spark, self.settings)
        return {t.qualified: wh.version(t) for t in (T.SONGS_RAW, T.EVENTS_RAW, T.LANDED_FILES, T.QUARANTINE)}

    def waiting(self) -> int:
        """Messages in the queue, visible or not."""
        sqs = storage.sqs_client()
        attrs = sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                                                                 "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def object_requests(self, mark: int) -> dict[str, int]:
        """HEAD and GET requests on landing files since `mark` (the ones a listing in pages must not make)."""
        done = self.s3.requests.requests[mark:]
        counts: dict[str, int] = {}
        for r in done:
            if r.bucket == LANDING and r.key.endswith(".json") and r.kind in ("HEAD", "GET"):
                counts[r.kind] = counts.get(r.kind, 0) + 1
        return counts


@pytest.fixture(scope="module")
def lake(spark, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    from lakehouse.session import apply_s3a_conf, close_s3a

    with moto_server(str(tmp_path_factory.mktemp("aws-home"))) as s3:
        previous = apply_s3a_conf(spark, s3a_test_conf(s3.endpoint))
        try:
            generated = tmp_path_factory.mktemp("disc-generated")
            generate(generated, SPEC)
            client = storage.s3_client()
            client.create_bucket(Bucket=LANDING)
            # The landing zone is on S3 (discovery is the point); the warehouse is local (test_s3.py covers one on S3).
            warehouse = f"file:{tmp_path_factory.mktemp('disc-warehouse')}"
            settings = dataclasses.replace(base_settings, source=SOURCE, warehouse=warehouse, reconcile_every_days=7)
            yield Lake(s3, spark, settings, generated, client)
        finally:
            close_s3a(spark, f"s3a://{LANDING}/")
            apply_s3a_conf(spark, previous)


def test_the_listing_in_pages_agrees_with_what_spark_recorded(lake: Lake) -> None:
    for rel in lake.songs[:-HELD_BACK] + lake.days[:2]:
        lake.put(rel)
    first = lake.run()
    assert first.sources["song_data"].files == SONGS - HELD_BACK and first.sources["log_data"].files == 2
    objects = SONGS - HELD_BACK + 2

    # Every object's LastModified from the listing equals what Spark's listing recorded, to the millisecond.
    mark = lake.s3.requests.mark()
    spark_listed = (lake.spark.read.format("binaryFile").option("recursiveFileLookup", "true").option("pathGlobFilter", "*.json")
                    .load(SOURCE).select(F.col("_metadata.file_path").alias("path"), F.unix_millis("_metadata.file_modification_time").alias("ms"))
                    .collect())
    before = lake.s3.requests.since(mark, LANDING)  # the listing as it was: a Spark binaryFile scan
    listed = {e.path: e.modified_ms for e in list_landing(SOURCE)}
    assert listed == {unquote(r["path"]): int(r["ms"]) for r in spark_listed}
    assert len(listed) == objects and before.get("HEAD", 0) >= objects

    # A warehouse from before the ETag: bronze.landed_files without the column, no cached index.
    wh = T.Warehouse(lake.spark, lake.settings)
    old = wh.read(T.LANDED_FILES).drop("etag")
    old.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(wh.path(T.LANDED_FILES))
    lake.system("landed_files.index").unlink()
    versions = lake.bronze_versions()
    mark = lake.s3.requests.mark()
    nothing = lake.run()
    after = lake.s3.requests.since(mark, LANDING)
    assert nothing.totals().files == 0 and nothing.details()["discovery"]["listed"] == objects
    assert lake.object_requests(mark) == {}, "a listing in pages makes no request per object"
    assert after["LIST"] <= 40 and sum(after.values()) < objects, after
    assert {k: v for k, v in lake.bronze_versions().items() if k != T.LANDED_FILES.qualified} == \
        {k: v for k, v in versions.items() if k != T.LANDED_FILES.qualified}, "nothing new: no bronze data written"
    landed = wh.read(T.LANDED_FILES)
    assert "etag" in landed.columns and landed.where(F.col("etag").isNotNull()).count() == 0  # old rows: NULL
    print(f"\n{objects} objects, nothing new: before (Spark binaryFile listing) {sum(before.values())} requests {before}; "
          f"after (listing in pages) {sum(after.values())} requests {after} (of them {nothing.details()['discovery']['requests']} by the listing)")


def queue_figures(report_row: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(report_row["details"])["discovery"])


def test_queue_mode_lists_once_then_reads_the_events(lake: Lake) -> None:
    gap = lake.days[2]
    lake.put(gap)  # lands before the queue is wired: only the first listing can find it
    proc = cli_in_process("sources", "setup-queue", "--source", SOURCE, "--queue", "disc-events")
    assert proc.returncode == 0, proc.stderr
    lake.queue_url = proc.stdout.split('url = "')[1].split('"')[0]
    assert 'discovery = "queue"' in proc.stdout
    lake.put(lake.days[3])
    for rel in lake.songs[-HELD_BACK:-HELD_BACK + 5]:
        lake.put(rel)
    mark = lake.s3.requests.mark()
    report = lake.run(lake.queued())
    discovery = report.details()["discovery"]
    assert discovery["how"] == "queue + first listing" and report.sources["log_data"].files == 2 and report.sources["song_data"].files == 5
    assert discovery["test"] == 1 and lake.waiting() == 0  # S3's test event read and deleted; every message deleted
    # Reading 7 new files by name costs Spark a few requests per file; discovery's own HEADs (queue keys) apart.
    reads = lake.object_requests(mark)
    heads = reads.get("HEAD", 0) - discovery["requests"].get("HEAD", 0)
    assert reads.get("GET", 0) == 7 and heads <= 3 * 7, reads
    print(f"\nreading 7 new files by name: {reads} on the objects ({discovery['requests']} of them by discovery)")
    assert lake.run(lake.queued()).totals().files == 0  # and then: nothing new, a handful of requests


def test_faults_at_the_client_and_a_crash_between_commit_and_delete(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = storage.sqs_client()
    new_songs = lake.songs[-HELD_BACK + 5:-HELD_BACK + 10]
    lost = new_songs[0]
    fleeting = "song_data/Z/Z/Z/TRZZZFLEETING.json"

    def faults(parsed: dict[str, Any], **_: Any) -> None:
        """Every message twice, in reverse order; the one naming `lost` deleted on the server (lost for good)."""
        messages = parsed.get("Messages", [])
        for m in [m for m in messages if lost.split("/")[-1] in m["Body"]]:
            raw.delete_message(QueueUrl=lake.queue_url, ReceiptHandle=m["ReceiptHandle"])
            messages.remove(m)
        parsed["Messages"] = list(reversed(messages + [dict(m) for m in messages]))

    def faulty_client() -> Any:
        client = raw_client()
        client.meta.events.register("after-call.sqs.ReceiveMessage", faults)
        return client

    raw_client = storage.sqs_client
    monkeypatch.setattr(storage, "sqs_client", faulty_client)
    lake.put(lake.days[4])
    for rel in new_songs:
        lake.put(rel)
    lake.put(fleeting, b'{"song_id": "SOFLEET", "title": "Gone"}')
    lake.client.delete_object(Bucket=LANDING, Key=f"zone/{fleeting}")  # created, then deleted: both events queued
    head = lake.client.head_object(Bucket=LANDING, Key=f"zone/{lake.songs[0]}")  # a re-delivery of a file ingested long ago
    raw.send_message(QueueUrl=lake.queue_url, MessageBody=json.dumps({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                     "s3": {"bucket": {"name": LANDING}, "object": {"key": f"zone/{lake.songs[0]}", "eTag": head["ETag"].strip('"')}}}]}))

    def crash(*_: Any) -> int:
        raise RuntimeError("killed between the commit and the deletion of the messages")

    monkeypatch.setattr(queue, "acknowledge", crash)
    wh = T.Warehouse(lake.spark, lake.settings)
    landed_before = wh.read(T.LANDED_FILES).count()
    with pytest.raises(RuntimeError, match="killed between"):
        lake.run(lake.queued())
    failed = wh.read(T.RUNS).orderBy(F.col("started_at").desc()).head().asDict()
    figures = queue_figures(failed)
    assert failed["status"] == "failed" and failed["files_in"] == 1 + len(new_songs) - 1  # all but the lost one
    assert figures["duplicates"] >= 1 and figures["gone"] == 1, figures  # the re-delivery, the deleted object
    assert wh.read(T.LANDED_FILES).count() == landed_before + len(new_songs)
    assert lake.system(queue.JOURNAL).exists()  # the journal of the events is kept



def test_reconcile_ingests_and_counts_what_the_queue_missed(lake: Lake) -> None:
    late = "log_data/2018/10/2018-10-31-events.json"  # a late file in an old month, its notification lost too
    lake.put(late, (lake.generated / lake.days[5]).read_bytes().replace(b"2018-11", b"2018-10"))
    sqs = storage.sqs_client()
    for m in sqs.receive_message(QueueUrl=lake.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
        sqs.delete_message(QueueUrl=lake.queue_url, ReceiptHandle=m["ReceiptHandle"])
    lost = lake.songs[-HELD_BACK + 5]  # the message the faults above lost
    # The run after the crash, without faults: the journal's events read again (all known), its messages deleted.
    report = lake.run(lake.queued(), reconcile=True, flows=True)
    reconciled = report.details()["discovery"]["reconcile"]
    assert reconciled == {"missed": 2, "files": sorted([late, lost])} and report.kind == "reconcile"
    assert report.sources["log_data"].files == 1 and report.sources["song_data"].files == 1  # nothing read twice
    assert lake.waiting() == 0 and not lake.system(queue.JOURNAL).exists()
    assert any("reconciliation: 2 file(s)" in line for line in report.drift_lines())
    wh = T.Warehouse(lake.spark, lake.settings)
    row = wh.read(T.RUNS).orderBy(F.col("started_at").desc()).head().asDict()
    assert row["kind"] == "reconcile" and queue_figures(row)["reconcile"]["missed"] == 2
    paths = wh.read(T.LANDED_FILES).select("path")
    assert paths.count() == paths.distinct().count(), "no file version recorded twice"
    # A date-bounded listing (no Spark) has the blind spot reconciliation covers: months before its bound.
    bounded = {e.path for e in list_landing(SOURCE, ["log_data"], months_from={"log_data": (2018, 11)})}
    assert f"{SOURCE}/{late}" not in bounded and {f"{SOURCE}/{d}" for d in lake.days[:5]} <= bounded
    index = LandedIndex.load(wh, wh.files, lake.settings.system_path)
    assert index.newest_month(f"{SOURCE}/log_data") == (2018, 11)


def test_sns_wrapped_events_are_read(lake: Lake) -> None:
    import boto3

    sns, sqs = boto3.client("sns", region_name="us-east-1"), storage.sqs_client()
    topic = sns.create_topic(Name="disc-topic")["TopicArn"]
    url = sqs.create_queue(QueueName="disc-sns")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    lake.client.create_bucket(Bucket="disc-fanout")
    lake.client.put_bucket_notification_configuration(Bucket="disc-fanout", NotificationConfiguration={
        "TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]})
    lake.client.put_object(Bucket="disc-fanout", Key="zone/song_data/A/my song+1.json", Body=b"{}")
    messages = queue.drain(sqs, url, 60)
    shapes = sorted(m.shape for m in messages)
    events = [e for m in messages for e in m.events]
    assert "sns" in shapes and events == [queue.Event("disc-fanout", "zone/song_data/A/my song+1.json", True,
                                                      events[0].etag, 2, events[0].sequencer)]
    assert queue.acknowledge(sqs, url, messages) == 0


def test_full_equals_incremental_across_the_modes(lake: Lake) -> None:
    """The warehouse the modes built, run by run, has the bronze and gold of one list run over the same landing zone."""
    fresh = dataclasses.replace(lake.settings, warehouse=lake.settings.warehouse + "-fresh")
    lake.run(fresh, flows=True)
    ours, theirs = T.Warehouse(lake.spark, lake.settings), T.Warehouse(lake.spark, fresh)
    for table in (T.SONGS_RAW, T.EVENTS_RAW, *T.GOLD_TABLES):
        a, b = (w.read(table).drop("_ingested_at", "_batch_id") for w in (ours, theirs))
        assert a.count() > 0 and a.exceptAll(b).count() == 0 and b.exceptAll(a).count() == 0, table.qualified
