"""S3 end to end against a moto server on 127.0.0.1: upload, the pipeline s3a -> s3a, preflight, generate."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse import storage
from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.generate import GenerateSpec, generate
from lakehouse.pipeline import Pipeline

from .helpers import free_port
from .s3server import S3Server, moto_server, s3a_test_conf

pytestmark = pytest.mark.e2e

SPEC = GenerateSpec(songs=40, users=8, days=2, events_per_day=200, seed=11)
LANDING, WAREHOUSE = "landing", "warehouse"
LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli"]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_server(str(tmp_path_factory.mktemp("aws-home"))) as server:
        yield server


@pytest.fixture(scope="module")
def s3_spark(spark, s3: S3Server) -> Iterator[object]:
    """The shared session, pointed at the moto server through its live Hadoop configuration."""
    from lakehouse.session import apply_s3a_conf, close_s3a

    previous = apply_s3a_conf(spark, s3a_test_conf(s3.endpoint))
    try:
        yield spark
    finally:
        for bucket in (LANDING, WAREHOUSE):
            close_s3a(spark, f"s3a://{bucket}/")
        apply_s3a_conf(spark, previous)


@pytest.fixture(scope="module")
def landing_zones(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The same landing zone with 2 and with 3 days (the first two days are byte-identical)."""
    zones = {}
    for days in (2, 3):
        out = tmp_path_factory.mktemp(f"landing{days}")
        generate(out, dataclasses.replace(SPEC, days=days))
        zones[days] = out
    return zones


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAKEHOUSE, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str, code: int = 2) -> str:
    assert proc.returncode == code, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "starting Spark" not in proc.stderr, proc.stderr
    return errors[0]


def songplays_in_landed_logs(bucket: str, prefix: str) -> int:
    """Distinct NextSong events with a userId, read back from the landed objects with boto3."""
    client = storage.s3_client()
    keys = set()
    for key in storage.list_sizes(client, bucket, f"{prefix}/log_data"):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        for line in body.splitlines():
            if line.strip():
                e = json.loads(line)
                if e["page"] == "NextSong" and e["userId"]:
                    keys.add((int(e["userId"]), e["sessionId"], e["itemInSession"], e["ts"]))
    return len(keys)


def test_upload_creates_the_bucket_and_skips_what_is_there(s3: S3Server, landing_zones: dict[int, Path]) -> None:
    local = landing_zones[2]
    files = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    calls: list[tuple[int, int]] = []
    summary = storage.upload(local, "s3a://up-test/zone/", progress=lambda done, total: calls.append((done, total)))
    assert (summary.files, summary.uploaded, summary.skipped) == (len(files), len(files), 0)
    assert calls[-1] == (len(files), len(files))
    landed = storage.list_sizes(storage.s3_client(), "up-test", "zone")
    assert sorted(landed) == [f"zone/{f}" for f in files]
    assert all(landed[f"zone/{f}"] == (local / f).stat().st_size for f in files)

    again = storage.upload(local, "s3a://up-test/zone")
    assert (again.uploaded, again.skipped, again.bytes_uploaded) == (0, len(files), 0)

    proc = cli("upload", "--from", str(local), "--to", "s3a://up-test/zone")  # the command: same, nothing new
    assert proc.returncode == 0, proc.stderr
    assert "uploaded 0 files" in proc.stderr and f"skipped {len(files)} already there" in proc.stderr


def test_pipeline_from_s3_to_s3_incremental_and_time_travel(
    s3_spark, s3: S3Server, base_settings: Settings, landing_zones: dict[int, Path]
) -> None:
    spark = s3_spark
    client = storage.s3_client()
    client.create_bucket(Bucket=WAREHOUSE)
    storage.upload(landing_zones[2], f"s3a://{LANDING}/pipe")
    settings = dataclasses.replace(base_settings, source=f"s3a://{LANDING}/pipe", warehouse=f"s3a://{WAREHOUSE}/wh")
    storage.preflight(settings.source, must_exist=True)
    storage.preflight(settings.warehouse, must_exist=False)

    first = Pipeline(spark, settings).run("incremental")
    assert first.sources["log_data"].files == 2 and first.sources["song_data"].files == SPEC.songs
    wh = T.Warehouse(spark, settings)
    plays_1 = songplays_in_landed_logs(LANDING, "pipe")
    assert plays_1 > 0 and wh.read(T.SONGPLAYS).count() == plays_1
    v1 = wh.version(T.SONGPLAYS)

    # One more day lands: only its file is new.
    landed = storage.upload(landing_zones[3], f"s3a://{LANDING}/pipe")
    assert (landed.uploaded, landed.skipped) == (1, SPEC.songs + 2)
    second = Pipeline(spark, settings).run("incremental")
    assert second.sources["log_data"].files == 1 and second.sources["song_data"].files == 0
    plays_2 = songplays_in_landed_logs(LANDING, "pipe")
    assert plays_2 > plays_1 and wh.read(T.SONGPLAYS).count() == plays_2
    assert wh.version(T.SONGPLAYS) > v1

    # Nothing new, from the command line: told from the bucket's listing and the warehouse's small files, logged in
    # ops.runs through delta-rs, no JVM (JAVA_HOME points nowhere: a run that reached Spark would stop at that).
    runs_before = wh.read(T.RUNS).count()
    quiet = cli("run", "incremental", "--source", settings.source, "--warehouse", settings.warehouse,
                env={"JAVA_HOME": "/nonexistent/java"})
    assert quiet.returncode == 0 and "Spark not started" in quiet.stderr, quiet.stderr
    assert wh.read(T.RUNS).count() == runs_before + 1

    # Time travel on S3: the first run's version still has the first run's rows.
    path = wh.path(T.SONGPLAYS)
    assert spark.read.format("delta").option("versionAsOf", v1).load(path).count() == plays_1
    assert spark.sql(f"SELECT count(*) AS n FROM delta.`{path}` VERSION AS OF {v1}").head()["n"] == plays_1

    # What is in the bucket: Delta logs per table, state beside them, no run lock left behind.
    objects = storage.list_sizes(client, WAREHOUSE, "wh")
    for table in (T.SONGS_RAW, T.EVENTS_RAW, T.EVENTS, T.SONGPLAYS, T.TIME, T.RUNS):
        assert f"wh/{table.layer}/{table.name}/_delta_log/00000000000000000000.json" in objects, table.qualified
    assert "wh/_system/state.json" in objects
    assert not any(k.endswith("run.lock") for k in objects)


def test_preflight_errors_are_one_line_before_spark_starts(s3: S3Server, landing_zones: dict[int, Path]) -> None:
    storage.upload(landing_zones[2], "s3a://pf-landing/zone")
    storage.s3_client().create_bucket(Bucket="pf-warehouse")
    run = ("run", "incremental", "--source", "s3a://pf-landing/zone", "--warehouse", "s3a://pf-warehouse/wh")

    dead = f"http://127.0.0.1:{free_port()}"
    line = assert_one_line_error(cli(*run, env={"AWS_ENDPOINT_URL_S3": dead}), f"S3 endpoint {dead} is unreachable")
    assert "Connection refused" in line

    assert_one_line_error(cli("run", "incremental", "--source", "s3a://no-such-landing/zone", "--warehouse", "s3a://pf-warehouse/wh"),
                          "no bucket 'no-such-landing'")
    line = assert_one_line_error(cli(*run[:-1], "s3a://no-such-warehouse/wh"), "no bucket 'no-such-warehouse'")
    assert "lakehouse upload" in line and "aws s3 mb" in line
    assert_one_line_error(cli(*run[:2], "--source", "s3a://pf-landing/elsewhere", *run[4:]), "nothing under this prefix")
    assert_one_line_error(cli(*run[:2], "--source", "s3a://pf-landing", *run[4:]), "neither song_data/ nor log_data/")

    # Credentials: moto accepts any by default; with its auth switched on it checks them against its IAM.
    import boto3

    iam = boto3.client("iam", endpoint_url=s3.endpoint, region_name="us-east-1")
    s3.set_auth(2)  # two requests without auth: create a user and its key; then every request is checked
    try:
        iam.create_user(UserName="etl")
        key = iam.create_access_key(UserName="etl")["AccessKey"]
        bad_key = {"AWS_ACCESS_KEY_ID": "AKIANOTAREALKEY00000", "AWS_SECRET_ACCESS_KEY": "nope"}
        assert_one_line_error(cli(*run, env=bad_key), "S3 rejected the credentials for bucket 'pf-landing' (InvalidAccessKeyId)")
        bad_secret = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
        assert_one_line_error(cli(*run, env=bad_secret), "(SignatureDoesNotMatch)")
        no_policy = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
        assert_one_line_error(cli(*run, env=no_policy), "(AccessDenied")
    finally:
        s3.set_auth(float("inf"))


def test_generate_writes_straight_to_s3(s3: S3Server) -> None:
    proc = cli("generate", "--out", "s3a://gen-bucket/landing", "--songs", "15", "--users", "4", "--days", "2",
               "--events-per-day", "100")
    assert proc.returncode == 0, proc.stderr
    objects = storage.list_sizes(storage.s3_client(), "gen-bucket", "landing")
    assert len([k for k in objects if k.startswith("landing/song_data/")]) == 15
    assert sorted(k for k in objects if k.startswith("landing/log_data/")) == [
        "landing/log_data/2018/11/2018-11-01-events.json", "landing/log_data/2018/11/2018-11-02-events.json"]
    storage.preflight("s3a://gen-bucket/landing", must_exist=True)
    assert_one_line_error(cli("generate", "--out", "s3://gen-bucket/landing"), "use the s3a:// scheme")


def test_split_s3a() -> None:
    assert storage.split_s3a("s3a://bucket/a/b/") == ("bucket", "a/b")
    assert storage.split_s3a("s3a://bucket") == ("bucket", "")
    with pytest.raises(ConfigError, match="use the s3a:// scheme"):
        storage.split_s3a("s3://bucket/a")
    with pytest.raises(ConfigError, match="not an s3a://"):
        storage.split_s3a("/local/path")


def test_run_lock_on_s3_is_held_by_exactly_one_of_runs_started_together(s3: S3Server) -> None:
    """Conditional PUTs make the lock atomic: of runs started in the same instant exactly one holds it,
    whether the lock is free or left stale by a killed run."""
    import socket
    import threading

    from lakehouse.errors import RunLockedError
    from lakehouse.state import LockFile, RunLock

    client = storage.s3_client()
    client.create_bucket(Bucket="lock-race")
    system = "s3a://lock-race/wh/_system"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = json.dumps({"run_id": "killed", "kind": "incremental", "pid": dead.pid, "host": socket.gethostname(),
                        "started_at": "2026-01-01T00:00:00+00:00", "heartbeat_at": "2026-01-01T00:00:00+00:00"})
    contenders, rounds = 4, 30
    for round_no in range(rounds):
        if round_no % 2:
            client.put_object(Bucket="lock-race", Key="wh/_system/run.lock", Body=stale.encode())
        locks = [RunLock(system, f"run-{round_no}-{i}", "incremental") for i in range(contenders)]
        start = threading.Barrier(contenders)
        holders: list[RunLock] = []
        refused: list[str] = []

        def contend(lock: RunLock, start: threading.Barrier, holders: list[RunLock], refused: list[str]) -> None:
            start.wait()
            try:
                lock.acquire()
                holders.append(lock)
            except RunLockedError as exc:
                refused.append(str(exc))

        threads = [threading.Thread(target=contend, args=(lock, start, holders, refused)) for lock in locks]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(holders) == 1 and len(refused) == contenders - 1, (round_no, len(holders), refused)
        assert all(holders[0].owner["run_id"] in msg for msg in refused)
        assert json.loads(LockFile(f"{system}/run.lock").read()[0] or "{}")["run_id"] == holders[0].owner["run_id"]
        holders[0].release()
        assert LockFile(f"{system}/run.lock").read() == (None, None)
