"""Bad input never crashes a run and never vanishes: rows in = rows loaded + rows quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from lakehouse import tables as T
from lakehouse.generate import GenerateSpec, generate

from .helpers import run

pytestmark = pytest.mark.e2e

GOOD = {"artist": None, "auth": "Logged In", "firstName": "A", "gender": "F", "itemInSession": 0, "lastName": "B",
        "length": None, "level": "free", "location": "X", "method": "GET", "page": "Home", "registration": 1.0,
        "sessionId": 1, "song": None, "status": 200, "ts": 1541105830796, "userAgent": "UA", "userId": "5"}


def test_bad_lines_are_quarantined_and_reconciled(spark, make_settings, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    generate(landing, GenerateSpec(songs=20, users=5, days=1, events_per_day=100, seed=5))
    logs = landing / "log_data" / "2018" / "11"
    bad_lines = [
        b"this is not json",
        b'{"ts": 1541105830796, "sessionId": 1',                       # truncated
        b"\x00\x01\x02\xff\xfe binary garbage",                          # binary + invalid UTF-8
        json.dumps({**GOOD, "firstName": "Zo\u00eb"}, ensure_ascii=False).encode("latin-1"),  # a latin-1 line
        b"[1, 2, 3]",                                                    # JSON, not an object
        json.dumps({**GOOD, "ts": "yesterday"}).encode(),               # wrong type
        json.dumps({k: v for k, v in GOOD.items() if k != "ts"}).encode(),  # no key
        b'{"note": "' + b"x" * 1_100_000 + b'"}',                        # very long line
    ]
    good_lines = [json.dumps({**GOOD, "itemInSession": i}).encode() for i in range(3)]
    # Parse fine (bronze loads them) but break conf/quality.toml rules: silver quarantines them.
    rule_breakers = [
        json.dumps({**GOOD, "itemInSession": 10, "page": "NextSong", "song": "S", "artist": "A", "length": -5.0}).encode(),
        json.dumps({**GOOD, "itemInSession": 11, "level": "gold"}).encode(),
    ]
    good_lines += rule_breakers
    (logs / "2018-11-30-events.json").write_bytes(b"\n".join(bad_lines[:4] + good_lines + bad_lines[4:]) + b"\n\n")
    (logs / "2018-11-29-events.json").write_bytes(b"")                   # empty file: fine
    (landing / "song_data" / "A" / "A" / "A").mkdir(parents=True, exist_ok=True)
    (landing / "song_data" / "A" / "A" / "A" / "TRAAABROKEN00001.json").write_text('{"title": "no id", "duration": 1.0}')

    settings = make_settings(landing, tmp_path / "wh")
    report = run(spark, settings)
    logs_in = report.sources["log_data"]
    assert logs_in.rows_in == 100 + len(bad_lines) + len(good_lines)
    assert logs_in.quarantined == len(bad_lines) and logs_in.loaded == 100 + len(good_lines)
    assert report.sources["song_data"].quarantined == 1

    wh = T.Warehouse(spark, settings)
    reasons = {r.reason: r.n for r in wh.read(T.QUARANTINE).where("source = 'log_data'").groupBy("reason")
               .agg(F.count("*").alias("n")).collect()}
    assert reasons == {
        "not a JSON object": 2,
        "not valid JSON (malformed or truncated)": 1,
        "invalid UTF-8 bytes": 2,
        "a field has the wrong type": 1,
        "missing key: ts": 1,
        "record longer than 1000000 characters": 1,
    }
    # The run log carries the reconciliation.
    logged = wh.read(T.RUNS).orderBy(F.desc("started_at")).first()
    assert (logged.rows_in, logged.rows_loaded, logged.rows_quarantined) == (
        logs_in.rows_in + 21, logs_in.loaded + 20, logs_in.quarantined + 1)
    assert wh.read(T.EVENTS_RAW).count() == logs_in.loaded
    rules = {r.reason.split(":")[0]: r.file.endswith("2018-11-30-events.json")
             for r in wh.read(T.QUARANTINE).where("source = 'silver.events'").collect()}
    assert rules == {"rule length_not_negative": True, "rule level_known": True}
    assert wh.read(T.EVENTS).where("ts = 1541105830796 AND item_in_session IN (10, 11)").count() == 0
    details = json.loads(logged.details)
    assert details["quality_rule_violations"]["events.length_not_negative"] == 1
    assert details["quality_rule_violations"]["events.level_known"] == 1
