"""Benchmark: finding what landed in a landing zone of 10,000 to 1,000,000 objects, per discovery mode, without Spark.

Every figure comes from the lakehouse's own discovery (lakehouse.record.discovery: the paged listing, the
queue, reconciliation) against bronze.landed_files' index loaded from its cache, as a run does it. What
S3 and SQS would answer comes from real boto3 clients whose calls are answered in the process by botocore
event hooks (`before-call.s3.ListObjectsV2`, `HeadObject`, `before-call.sqs.ReceiveMessage`,
`DeleteMessageBatch`) from a sorted key list and an in-memory queue: nothing is sent anywhere, and the
latency of each call is modelled (added up per thread, not slept). Each measurement runs in a process of its
own, so that its peak memory is its own.

    python benchmarks/landing.py                        # 10k, 100k and 1M objects; a few minutes
    python benchmarks/landing.py --sizes 10000          # one size (a smoke run)

Results: benchmarks/results/landing.{json,md}; the table also goes into benchmarks/results/latest.md.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import datetime
import json
import os
import pickle
import random
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results"
BUCKET, PREFIX = "landing", "sparkify"
SOURCE = f"s3a://{BUCKET}/{PREFIX}"
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/lakehouse-landing"
SIZES = (10_000, 100_000, 1_000_000)
LOG_DAYS = 1096  # three years of daily log files; the rest are song files
NEW_SONGS = 100  # one new day: 1 log file and 100 songs
DROPPED = 0.05  # reconciliation: the share of notifications lost
# Modelled latency per call, in ms (typical same-region S3/SQS round trips; a list page carries 1,000 keys).
LATENCY_MS = {"LIST": 60.0, "HEAD": 15.0, "GET": 20.0, "SQS": 12.0, "SQS_EMPTY_WAIT": 1000.0}
# What Spark's S3A reader adds per new file it reads by name (measured against the S3 test server,
# tests/e2e/test_landing_discovery.py): the same in every mode, so shown apart from discovery.
SPARK_READ_PER_FILE = {"HEAD": 3, "LIST": 1, "GET": 1}
START = datetime.datetime(2016, 1, 1, tzinfo=datetime.timezone.utc)
MARK_START, MARK_END = "<!-- landing-scale:start -->", "<!-- landing-scale:end -->"


# ---------------------------------------------------------------------------------------- the landing zone
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def song_key(rng: random.Random) -> str:
    a = rng.getrandbits(15) % 17576
    track = f"TR{LETTERS[a % 26]}{LETTERS[a // 26 % 26]}{LETTERS[a // 676]}{rng.getrandbits(52):013X}"
    return f"{PREFIX}/song_data/{track[2]}/{track[3]}/{track[4]}/{track}.json"


def log_key(day: int) -> str:
    d = (START + datetime.timedelta(days=day)).date()
    return f"{PREFIX}/log_data/{d:%Y}/{d:%m}/{d:%Y-%m-%d}-events.json"


def etag_of(salt: int) -> str:
    """A deterministic 32-hex-digit ETag (the same in every process): the object's rank, or the time it was put."""
    return f"{salt:032x}"


@dataclasses.dataclass
class Zone:
    """The objects of the bucket: sorted keys and their (LastModified ms, ETag, size)."""

    keys: list[str]
    meta: dict[str, tuple[int, str, int]]

    @classmethod
    def build(cls, size: int, seed: int = 23) -> Zone:
        rng = random.Random(seed)
        keys = {log_key(d) for d in range(min(LOG_DAYS, size // 10))}
        while len(keys) < size:
            keys.add(song_key(rng))
        ordered = sorted(keys)
        return cls(ordered, {key: (1_451_606_400_000 + i * 1000, etag_of(i), 4096) for i, key in enumerate(ordered)})

    @staticmethod
    def saved(cache: Path) -> Path:
        return cache.with_suffix(".zone.pickle")

    @classmethod
    def load(cls, cache: Path) -> Zone:
        """The zone `write_cache` saved beside the index's cache (built once per size, not once per measurement)."""
        with cls.saved(cache).open("rb") as fh:
            keys, meta = pickle.load(fh)
        return cls(keys, meta)

    def put(self, key: str, ms: int) -> None:
        if key not in self.meta:
            bisect.insort(self.keys, key)
        self.meta[key] = (ms, etag_of(ms), 4096)

    def newest_log_day(self) -> int:
        days = [k for k in self.keys if "/log_data/" in k]
        last = datetime.date.fromisoformat(days[-1].rsplit("/", 1)[1][:10]) if days else START.date()
        return (last - START.date()).days


# ---------------------------------------------------------------------------------------- the fake services
class Model:
    """Requests answered in the process; the latency each would have taken, per thread (threads run in parallel)."""

    def __init__(self) -> None:
        self.ms_by_thread: dict[str, float] = {}
        self.lock = threading.Lock()

    def spend(self, kind: str) -> None:
        name = threading.current_thread().name.rsplit("_", 1)[0]  # a pool's threads share a name prefix
        thread = f"{name}#{threading.get_ident()}"
        with self.lock:
            self.ms_by_thread[thread] = self.ms_by_thread.get(thread, 0.0) + LATENCY_MS[kind]

    def seconds(self) -> float:
        """The modelled time: the main thread's calls, plus per pool the busiest of its threads (pools run one after another)."""
        busiest: dict[str, float] = {}
        for thread, ms in self.ms_by_thread.items():
            pool = thread.split("#")[0]
            busiest[pool] = busiest.get(pool, 0.0) + ms if pool == "MainThread" else max(busiest.get(pool, 0.0), ms)
        return round(sum(busiest.values()) / 1000, 2)


class _Http:
    def __init__(self, status: int) -> None:
        self.status_code, self.headers, self.content = status, {}, b""


def _params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    context["api_params"] = dict(params)


def _refuse(event_name: str = "", **_: Any) -> None:
    raise RuntimeError(f"the benchmark answers no {event_name}: nothing may leave the process")


def fake_s3(zone: Zone, model: Model) -> Any:
    import boto3

    client = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench").client(
        "s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    top = chr(0x10FFFF)

    def list_v2(context: dict[str, Any], **_: Any) -> tuple[_Http, dict[str, Any]]:
        model.spend("LIST")
        p = context["api_params"]
        prefix, delimiter, limit = p.get("Prefix", ""), p.get("Delimiter"), int(p.get("MaxKeys", 1000))
        token = p.get("ContinuationToken")
        i = bisect.bisect_left(zone.keys, prefix) if token is None else bisect.bisect_left(zone.keys, token)
        contents: list[dict[str, Any]] = []
        prefixes: list[dict[str, str]] = []
        keys = zone.keys
        while i < len(keys) and keys[i].startswith(prefix) and len(contents) + len(prefixes) < limit:
            key = keys[i]
            cut = key.find(delimiter, len(prefix)) if delimiter else -1
            if cut >= 0:
                common = key[:cut + 1]
                prefixes.append({"Prefix": common})
                i = bisect.bisect_left(keys, common + top)
                continue
            ms, etag, size = zone.meta[key]
            contents.append({"Key": key, "LastModified": datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc),
                             "ETag": f'"{etag}"', "Size": size})
            i += 1
        more = i < len(keys) and keys[i].startswith(prefix)
        page: dict[str, Any] = {"IsTruncated": more, "KeyCount": len(contents) + len(prefixes), "Prefix": prefix}
        if contents:
            page["Contents"] = contents
        if prefixes:
            page["CommonPrefixes"] = prefixes
        if more:
            page["NextContinuationToken"] = keys[i]
        return _Http(200), page

    def head(context: dict[str, Any], **_: Any) -> tuple[_Http, dict[str, Any]]:
        model.spend("HEAD")
        found = zone.meta.get(context["api_params"]["Key"])
        if found is None:
            return _Http(404), {"Error": {"Code": "404", "Message": "Not Found"}, "ResponseMetadata": {"HTTPStatusCode": 404}}
        ms, etag, size = found
        return _Http(200), {"LastModified": datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc), "ETag": f'"{etag}"',
                            "ContentLength": size}

    client.meta.events.register("before-parameter-build.s3", _params)
    client.meta.events.register("before-call.s3.ListObjectsV2", list_v2)
    client.meta.events.register("before-call.s3.HeadObject", head)
    client.meta.events.register("before-call.s3", _refuse)
    return client


class FakeQueue:
    """An SQS queue in memory: messages handed out 10 at a time, deleted by receipt handle."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.waiting: list[tuple[str, str]] = []  # (id, body)
        self.in_flight: dict[str, tuple[str, str]] = {}

    def notify(self, zone: Zone, key: str) -> None:
        from urllib.parse import quote_plus

        ms, etag, size = zone.meta[key]
        body = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                             "eventTime": datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).isoformat(),
                             "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(key), "size": size, "eTag": etag,
                                                                           "sequencer": f"{ms:016X}"}}}]}
        self.waiting.append((f"m{len(self.waiting)}-{len(self.in_flight)}-{key[-12:]}", json.dumps(body)))

    def client(self) -> Any:
        import boto3

        sqs = boto3.session.Session(aws_access_key_id="bench", aws_secret_access_key="bench").client(
            "sqs", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")

        def receive(context: dict[str, Any], **_: Any) -> tuple[_Http, dict[str, Any]]:
            n = int(context["api_params"].get("MaxNumberOfMessages", 1))
            got, self.waiting = self.waiting[:n], self.waiting[n:]
            self.model.spend("SQS" if got else "SQS_EMPTY_WAIT")
            out = []
            for message_id, body in got:
                receipt = f"r-{message_id}"
                self.in_flight[receipt] = (message_id, body)
                out.append({"MessageId": message_id, "ReceiptHandle": receipt, "Body": body})
            return _Http(200), ({"Messages": out} if out else {})

        def delete(context: dict[str, Any], **_: Any) -> tuple[_Http, dict[str, Any]]:
            self.model.spend("SQS")
            entries = context["api_params"]["Entries"]
            for e in entries:
                self.in_flight.pop(e["ReceiptHandle"], None)
            return _Http(200), {"Successful": [{"Id": e["Id"]} for e in entries], "Failed": []}

        sqs.meta.events.register("before-parameter-build.sqs", _params)
        sqs.meta.events.register("before-call.sqs.ReceiveMessage", receive)
        sqs.meta.events.register("before-call.sqs.DeleteMessageBatch", delete)
        sqs.meta.events.register("before-call.sqs", _refuse)
        return sqs


# ---------------------------------------------------------------------------------------- one measurement
MODES = ("list", "list, date-bounded", "queue")
SCENARIOS = ("nothing new", "one new day", "reconcile after 5% dropped")


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def settings_for(mode: str) -> Any:
    from lakehouse.config import load_settings

    base = load_settings("local", {"source": SOURCE, "warehouse": "/tmp/landing-bench-warehouse"}, environ={})
    return dataclasses.replace(base, discovery="queue" if mode == "queue" else "list", queue_url=QUEUE_URL,
                               listing_date_bounded=mode == "list, date-bounded", listing_lookback_months=1, reconcile_every_days=7)


def measure(size: int, mode: str, scenario: str, cache: Path) -> dict[str, Any]:
    """One run's discovery: the index loaded from its cache and compared, requests by kind, modelled time, memory."""
    from lakehouse.record import queue
    from lakehouse.record.discovery import Discovery
    from lakehouse.record.landing import LandedIndex
    from lakehouse.storage import RequestCount

    zone = Zone.load(cache)
    model = Model()
    sqs_queue = FakeQueue(model)
    new_keys: list[str] = []
    rng = random.Random(size)
    if scenario == "one new day":
        new_keys = [log_key(zone.newest_log_day() + 1)] + [song_key(rng) for _ in range(NEW_SONGS)]
    elif scenario.startswith("reconcile"):
        new_keys = [song_key(rng) for _ in range(max(20, size // 100))]
    for key in new_keys:
        zone.put(key, 1_700_000_000_000)
    dropped = set(rng.sample(new_keys, round(len(new_keys) * DROPPED))) if scenario.startswith("reconcile") else set()
    for key in new_keys:
        if key not in dropped:
            sqs_queue.notify(zone, key)
    s3, sqs = fake_s3(zone, model), sqs_queue.client()
    state = {"queue": QUEUE_URL, "reconciled_at": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    settings = settings_for(mode)
    names = ["song_data", "log_data"]

    base = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    index = LandedIndex.loads(cache.read_text())
    assert index is not None
    loaded_s = time.perf_counter() - started
    found = Discovery(settings, index, names, dict(state), s3=s3, sqs=sqs).run()
    if found.messages:  # after bronze's commit the run deletes the messages: part of its cost
        deleted = RequestCount().attach(sqs)
        queue.acknowledge(sqs, QUEUE_URL, found.messages)
        deleted.detach()
        found.requests["SQS"] = found.requests.get("SQS", 0) + deleted.counts.get("SQS", 0)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    result: dict[str, Any] = {
        "size": size, "mode": mode, "scenario": scenario, "objects": len(zone.keys), "new_objects": len(new_keys),
        "found": len(found.compared.paths()), "how": found.how, "requests": found.requests,
        "request_total": sum(found.requests.values()), "modelled_s": model.seconds(), "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "index_load_s": round(loaded_s, 2), "memory_mb": round(peak_mb() - base, 0), "peak_rss_mb": round(peak_mb(), 0),
        "indexed": len(index),
    }
    expected = {f"s3a://{BUCKET}/{k}" for k in new_keys}
    if scenario.startswith("reconcile") and mode == "queue":
        # The run ingests what the queue named (as bronze records it), then reconciliation lists everything.
        assert found.compared.paths() == expected - {f"s3a://{BUCKET}/{k}" for k in dropped}
        index.add((p, v.ms, v.etag) for files in found.compared.new.values() for p, v in files.items())
        model.ms_by_thread.clear()
        started = time.perf_counter()
        again = Discovery(settings, index, names, dict(state), s3=s3, sqs=sqs).run(reconcile=True)
        missed = {p for paths in again.missed.values() for p in paths}
        result.update({"dropped": len(dropped), "missed_found": len(missed), "all_missed_ingested": missed == {f"s3a://{BUCKET}/{k}" for k in dropped}
                       and again.compared.paths() == missed, "reconcile_requests": again.requests,
                       "reconcile_request_total": sum(again.requests.values()), "reconcile_modelled_s": model.seconds(),
                       "reconcile_wall_s": round(time.perf_counter() - started, 2), "reconcile_how": again.how,
                       "reported": again.details(SOURCE).get("reconcile", {}).get("missed")})
    else:
        result["all_found"] = found.compared.paths() >= expected - {f"s3a://{BUCKET}/{k}" for k in dropped}
    return result


def measure_index(size: int, cache: Path) -> dict[str, Any]:
    """The index alone: its cache loaded and a listing of every object compared with it (nothing new)."""
    from lakehouse.record.landing import LandedIndex
    from lakehouse.record.listing import Listed

    zone = Zone.load(cache)
    listing = [Listed("log_data" if "/log_data/" in k else "song_data", f"s3a://{BUCKET}/{k}", ms, etag, n)
               for k, (ms, etag, n) in zone.meta.items()]
    base = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    index = LandedIndex.loads(cache.read_text())
    assert index is not None
    loaded = time.perf_counter() - started
    compared = index.compare(listing)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert not compared.new and not compared.moved
    return {"size": size, "indexed": len(index), "load_s": round(loaded, 2), "compare_s": round(wall - loaded, 2),
            "wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "memory_mb": round(peak_mb() - base, 0)}


def write_cache(size: int, path: Path) -> None:
    """bronze.landed_files' cached index with every object of the zone recorded ("already ingested"); the zone beside it."""
    from lakehouse.record.landing import LandedIndex

    zone = Zone.build(size)
    index = LandedIndex(1)
    index.add((f"s3a://{BUCKET}/{k}", ms, etag) for k, (ms, etag, _) in zone.meta.items())
    path.write_text(index.dumps())
    with Zone.saved(path).open("wb") as fh:
        pickle.dump((zone.keys, zone.meta), fh, protocol=pickle.HIGHEST_PROTOCOL)


# ---------------------------------------------------------------------------------------- the table
def targets(results: list[dict[str, Any]], indexes: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(status, target, figures) for the issue's targets, at the largest size measured."""
    top = max(r["size"] for r in results)

    def pick(mode: str, scenario: str) -> dict[str, Any] | None:
        return next((r for r in results if r["size"] == top and r["mode"] == mode and r["scenario"] == scenario), None)

    out = []
    lst = pick("list", "nothing new")
    if lst:
        per_object = lst["requests"].get("HEAD", 0) + lst["requests"].get("GET", 0)
        ok = lst["request_total"] <= 1100 and per_object == 0
        out.append(("met" if ok else "not met", f"nothing new at {top:,}: list mode ≤ 1,100 requests, none per object",
                    f"{lst['request_total']:,} requests ({lst['requests']}), {per_object} HEAD/GET"))
    q = pick("queue", "nothing new")
    if q:
        total_s = q["wall_s"] + q["modelled_s"]
        ok = q["request_total"] <= 20 and total_s <= 10
        out.append(("met" if ok else "not met", f"nothing new at {top:,}: queue mode ≤ 20 requests and ≤ 10 s",
                    f"{q['request_total']} requests, {q['wall_s']:.2f} s wall + {q['modelled_s']:.2f} s modelled"))
    d = pick("queue", "one new day")
    if d:
        limit = 3 * d["new_objects"] + 20
        out.append(("met" if d["request_total"] <= limit else "not met",
                    f"one new day at {top:,} (1 log file, {NEW_SONGS} songs): queue ≤ 3 requests per new object + 20",
                    f"{d['request_total']} requests for {d['new_objects']} new objects (≤ {limit}); all found: {d['all_found']}"))
    idx = next((i for i in indexes if i["size"] == top), None)
    if idx:
        # CPU time: on a machine others load, wall time measures them (the wall is shown beside it)
        ok = idx["cpu_s"] <= 5 and idx["memory_mb"] <= 1024
        out.append(("met" if ok else "not met", f"the index: loading and comparing {idx['indexed']:,} recorded files ≤ 5 s (CPU) and ≤ 1 GB",
                    f"load {idx['load_s']:.2f} s + compare {idx['compare_s']:.2f} s = {idx['wall_s']:.2f} s wall ({idx['cpu_s']:.2f} s CPU), "
                    f"{idx['memory_mb']:.0f} MB"))
    rec = pick("queue", "reconcile after 5% dropped")
    if rec:
        out.append(("met" if rec["all_missed_ingested"] and rec["reported"] == rec["dropped"] else "not met",
                    "reconciliation after 5 % of notifications dropped: every missed file found and counted",
                    f"{rec['dropped']} dropped of {rec['new_objects']:,}; reconciliation found and reported {rec['reported']}; "
                    f"{rec['reconcile_request_total']:,} requests"))
    return out


def markdown(results: list[dict[str, Any]], indexes: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def req(r: dict[str, Any], key: str = "requests") -> str:
        counts = r[key]
        return " · ".join(f"{k} {counts[k]:,}" for k in ("LIST", "HEAD", "GET", "SQS") if counts.get(k)) or "none"

    lines = [MARK_START, "## Landing zone at scale: discovery per mode (`python benchmarks/landing.py`)", "",
             f"{meta['finished_at']} · {meta['cpus']} CPUs · load avg {meta['load']} · no Spark: the lakehouse's own discovery "
             "against a boto3 client answered by botocore hooks from a sorted key list (latency modelled: "
             + ", ".join(f"{k} {v:.0f} ms" for k, v in LATENCY_MS.items()) + "); the index of bronze.landed_files "
             "pre-filled with every object already there, loaded from its cache. Requests: discovery's, by kind, counted "
             "by a botocore event hook. Wall (and CPU): the process's real (and CPU) time for index load + discovery + compare; memory: peak "
             "RSS growth over that (the fake bucket excluded).", "",
             "| objects | scenario | mode | how | requests | total | modelled S3 s | wall s | CPU s | memory MB |",
             "| ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['size']:,} | {r['scenario']} | {r['mode']} | {r['how']} | {req(r)} | {r['request_total']:,} | "
                     f"{r['modelled_s']:.2f} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {r['memory_mb']:.0f} |")
        if "reconcile_requests" in r:
            lines.append(f"| {r['size']:,} | … then `lakehouse reconcile` | {r['mode']} | {r['reconcile_how']} | {req(r, 'reconcile_requests')} | "
                         f"{r['reconcile_request_total']:,} | {r['reconcile_modelled_s']:.2f} | {r['reconcile_wall_s']:.2f} | – | – |")
    lines += ["", "Before this change a run listed the landing zone with a Spark `binaryFile` scan: one HEAD per object besides the "
              "LISTs (measured on the S3 test server: 3,015 requests for 3,002 objects with nothing new), i.e. about "
              + ", ".join(f"{s + -(-s // 1000):,} at {s:,}" for s in sorted({r['size'] for r in results})) + ".",
              "", "The index alone (its cache loaded, then a listing of every object compared with it, nothing new): "
              + "; ".join(f"{i['indexed']:,} files: load {i['load_s']:.2f} s + compare {i['compare_s']:.2f} s, {i['memory_mb']:.0f} MB"
                          for i in indexes) + ".",
              "", "Reading the new files is the same in every mode: Spark's S3A reader makes "
              + ", ".join(f"{k} ×{v}" for k, v in SPARK_READ_PER_FILE.items())
              + " per file it reads by name (measured on the S3 test server), on top of discovery's requests above.", "",
              "### Targets", ""]
    lines += [f"- **{status}** — {name}: {figures}" for status, name, figures in targets(results, indexes)]
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def splice(latest: Path, section: str) -> None:
    """Put the section into latest.md, in place of an earlier one (or at the end)."""
    text = latest.read_text() if latest.exists() else "# Benchmark\n"
    if MARK_START in text and MARK_END in text:
        head, rest = text.split(MARK_START, 1)
        text = head + section.rstrip("\n") + rest.split(MARK_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    latest.write_text(text)


def kept_section(results_dir: Path) -> str:
    """The last landing-scale section (for run.py, which writes latest.md anew), or ''."""
    path = results_dir / "landing.md"
    return "\n" + path.read_text() if path.exists() else ""


# ---------------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="objects in the landing zone, comma-separated")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / ".work" / "landing")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--render", action="store_true", help="write the table again from results/landing.json (no measurement)")
    parser.add_argument("--one", nargs=4, metavar=("SIZE", "MODE", "SCENARIO", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        size, mode, scenario, cache = args.one
        print(json.dumps(measure_index(int(size), Path(cache)) if mode == "index" else measure(int(size), mode, scenario, Path(cache))))
        return 0
    if args.render:
        saved = json.loads((args.results_dir / "landing.json").read_text())
        section = markdown(saved["results"], saved["index"], saved["meta"])
        (args.results_dir / "landing.md").write_text(section)
        splice(args.results_dir / "latest.md", section)
        print(section)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    args.work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = []
    indexes = []

    def one(*what: str) -> dict[str, Any]:
        proc = subprocess.run([sys.executable, __file__, "--one", *what], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(1)
        return dict(json.loads(proc.stdout.splitlines()[-1]))

    try:
        for size in sizes:
            cache = args.work_dir / f"index-{size}.txt"
            write_cache(size, cache)
            indexes.append(one(str(size), "index", "-", str(cache)))
            i = indexes[-1]
            print(f"{size:>9,} index: load {i['load_s']:.2f} s, compare {i['compare_s']:.2f} s, {i['memory_mb']:.0f} MB", flush=True)
            for scenario in SCENARIOS:
                for mode in MODES if not scenario.startswith("reconcile") else ("queue",):
                    results.append(one(str(size), mode, scenario, str(cache)))
                    r = results[-1]
                    print(f"{size:>9,} {scenario:<28} {mode:<20} {r['request_total']:>6,} requests "
                          f"{r['modelled_s']:>6.2f} s modelled {r['wall_s']:>6.2f} s wall {r['memory_mb']:>5.0f} MB", flush=True)
    finally:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    meta = {"finished_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpus": os.cpu_count(),
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg()), "seconds": round(time.perf_counter() - started, 1),
            "latency_ms": LATENCY_MS, "spark_read_per_file": SPARK_READ_PER_FILE}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "landing.json").write_text(json.dumps({"meta": meta, "index": indexes, "results": results}, indent=2) + "\n")
    section = markdown(results, indexes, meta)
    (args.results_dir / "landing.md").write_text(section)
    splice(args.results_dir / "latest.md", section)
    print(section)
    print(f"wrote {args.results_dir / 'landing.md'}, landing.json and the section of latest.md in {meta['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
