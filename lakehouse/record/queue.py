"""S3 event notifications read from an SQS queue: drained each run, deleted only after the batch's commit.

S3 sends a message per change of an object (`ObjectCreated:*`, `ObjectRemoved:*`) to a queue, directly or
through an SNS topic (then the S3 event is the `Message` string of an SNS envelope); both shapes are read,
and S3's `s3:TestEvent` is skipped. Keys arrive URL-encoded (`+` for a space) and are decoded here.
Delivery is at least once and in no particular order: duplicates, re-deliveries, events out of order
and objects deleted since are normal, and are sorted out against bronze.landed_files
(lakehouse.record.discovery), not here.

A run receives the messages with a visibility timeout longer than the run, keeps them in a journal
beside the pipeline state (`_system/queue/pending.json`, the record of the events drained) and deletes
them from the queue only after bronze has committed what they named. A run that stops in between leaves
the journal: the next run reads its events again (now found in the index: nothing new) and deletes
their messages; any the queue hands out again are duplicates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from lakehouse.errors import ConfigError

if TYPE_CHECKING:
    from lakehouse.storage import S3Client

log = logging.getLogger(__name__)

RECEIVE_MAX = 10  # SQS hands out at most 10 messages per receive and deletes at most 10 per batch
WAIT_SECONDS = 1  # long polling: asks every SQS server (a short poll may answer "empty" while messages wait)
MAX_MESSAGES = 100_000  # per run; the rest waits for the next run
NOTIFICATION_ID = "lakehouse-landing"


@dataclass(frozen=True)
class Event:
    """One S3 event: an object created or removed."""

    bucket: str
    key: str  # decoded
    created: bool  # ObjectCreated:* (else ObjectRemoved:*)
    etag: str | None = None
    size: int | None = None
    sequencer: str | None = None


@dataclass
class Message:
    """One SQS message: its receipt handle (to delete it) and the events it carries."""

    id: str
    receipt: str
    shape: str  # "s3" (S3 -> SQS), "sns" (S3 -> SNS -> SQS), "test" (s3:TestEvent), "unreadable"
    events: list[Event] = field(default_factory=list)


def parse(body: str) -> tuple[str, list[Event]]:
    """The shape and S3 events of a message body; ("unreadable", []) for anything else."""
    try:
        doc = json.loads(body)
        shape = "s3"
        if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
            doc, shape = json.loads(doc["Message"]), "sns"
        if not isinstance(doc, dict):
            return "unreadable", []
        if doc.get("Event") == "s3:TestEvent":
            return "test", []
        events = []
        for record in doc["Records"]:
            name = str(record.get("eventName", ""))
            if record.get("eventSource") != "aws:s3" or not name.startswith(("ObjectCreated:", "ObjectRemoved:")):
                continue
            s3 = record["s3"]
            obj = s3["object"]
            size = obj.get("size")
            events.append(Event(str(s3["bucket"]["name"]), unquote_plus(str(obj["key"])), name.startswith("ObjectCreated:"),
                                str(obj.get("eTag") or "").strip('"') or None, int(size) if size is not None else None,
                                obj.get("sequencer")))
        return shape, events
    except (ValueError, KeyError, TypeError, AttributeError):
        return "unreadable", []


def drain(sqs: Any, url: str, visibility_seconds: int, limit: int = MAX_MESSAGES) -> list[Message]:
    """Receive every message waiting (up to `limit`), hidden from other receivers for `visibility_seconds`."""
    messages: list[Message] = []
    while len(messages) < limit:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=min(RECEIVE_MAX, limit - len(messages)),
                                  WaitTimeSeconds=WAIT_SECONDS, VisibilityTimeout=visibility_seconds).get("Messages", [])
        if not got:
            break
        for m in got:
            shape, events = parse(str(m.get("Body", "")))
            if shape == "unreadable":
                log.warning("queue: a message that is no S3 event notification (deleted with the batch): %.200s", m.get("Body"))
            messages.append(Message(str(m["MessageId"]), str(m["ReceiptHandle"]), shape, events))
    return messages


def acknowledge(sqs: Any, url: str, messages: Iterable[Message]) -> int:
    """Delete the messages from the queue, 10 per request; returns how many could not be deleted.

    A message received twice (a re-delivery, or a journal's message handed out again) is deleted once,
    by its latest receipt handle: SQS refuses a batch that names one twice.
    """
    todo = list({m.id: m for m in messages}.values())
    failed = 0
    for start in range(0, len(todo), RECEIVE_MAX):
        chunk = todo[start:start + RECEIVE_MAX]
        answer = sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)])
        for fail in answer.get("Failed", []):
            failed += 1
            log.warning("queue: message %s not deleted (%s); it will come again and count as a duplicate",
                        chunk[int(fail["Id"])].id, fail.get("Code"))
    return failed


# ---------------------------------------------------------------------------------------- the journal
JOURNAL = "queue/pending.json"


def journal_uri(system_path: str) -> str:
    return f"{system_path}/{JOURNAL}"


def dumps(url: str, run_id: str, messages: list[Message]) -> str:
    return json.dumps({"queue": url, "run_id": run_id, "messages": [asdict(m) for m in messages]}, separators=(",", ":"))


def loads(text: str | None, url: str) -> list[Message]:
    """The messages of a journal a run left behind (none when it is for another queue or unreadable)."""
    if not text:
        return []
    try:
        doc = json.loads(text)
        if doc.get("queue") != url:
            return []
        return [Message(str(m["id"]), str(m["receipt"]), str(m["shape"]), [Event(**e) for e in m["events"]]) for m in doc["messages"]]
    except (ValueError, KeyError, TypeError):
        log.warning("queue: ignoring an unreadable journal (its files are found again by the next reconciliation)")
        return []


# ---------------------------------------------------------------------------------------- wiring
def setup(source_uri: str, queue: str, s3: S3Client | None = None, sqs: Any | None = None) -> str:
    """Wire the landing zone's bucket to a queue: create the queue (a name) or use it (a URL), allow the bucket
    to send to it, and add an event notification for `*.json` created or removed under the source prefix.

    Other notification configurations of the bucket are kept. Returns the queue's URL.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from lakehouse.storage import explain, shared_s3_client, split_s3a, sqs_client

    bucket, prefix = split_s3a(source_uri)
    s3 = s3 or shared_s3_client()
    sqs = sqs or sqs_client()
    try:
        url = queue if queue.startswith(("http://", "https://")) else sqs.create_queue(
            QueueName=queue, Attributes={"MessageRetentionPeriod": "1209600"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "lakehouse-landing-events", "Effect": "Allow", "Principal": {"Service": "s3.amazonaws.com"},
            "Action": "sqs:SendMessage", "Resource": arn, "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{bucket}"}}}]}
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
        current.pop("ResponseMetadata", None)
        rules = [{"Name": "suffix", "Value": ".json"}] + ([{"Name": "prefix", "Value": f"{prefix}/"}] if prefix else [])
        queues = [q for q in current.get("QueueConfigurations", []) if q.get("Id") != NOTIFICATION_ID]
        queues.append({"Id": NOTIFICATION_ID, "QueueArn": arn, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"],
                       "Filter": {"Key": {"FilterRules": rules}}})
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={**current, "QueueConfigurations": queues})
    except ClientError as exc:
        raise explain(exc, s3, bucket) from None
    except BotoCoreError as exc:
        raise ConfigError(f"could not wire bucket {bucket!r} to queue {queue!r}: {exc}") from None
    return str(url)


def waiting(sqs: Any, url: str) -> int:
    """Messages waiting to be received (SQS's approximate count): one request, and none is received or hidden."""
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))
