from __future__ import annotations

import datetime

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse.record import bronze

T0 = datetime.datetime(2018, 11, 1)


def _raw(spark, values):
    return spark.createDataFrame(
        [(v, "file:/land/log_data/2018/11/x.json", T0) for v in values],
        "value string, _source_file string, _source_modified_at timestamp",
    )


GOOD = '{"artist":null,"auth":"Logged In","itemInSession":0,"page":"Home","sessionId":38,"ts":1541105830796,"userId":"39"}'


def test_each_bad_line_gets_its_reason(spark) -> None:
    lines = [
        GOOD,
        "not json at all",
        '{"ts": 1541105830796, "sessionId": 3',
        "[1, 2]",
        '{"ts": "yesterday", "sessionId": 1, "itemInSession": 0}',
        '{"page": "Home", "sessionId": 1, "itemInSession": 0}',
        '{"ts": 1, "sessionId": 1, "itemInSession": 0, "userId": "abc"}',
        '{"ts": 1, "sessionId": 1, "itemInSession": 0, "userId": "caf\ufffd"}',
    ]
    parsed = bronze.parse_events(_raw(spark, lines)).select("value", "_reason")
    expected = spark.createDataFrame(
        list(zip(lines, [
            None,
            "not a JSON object",
            "not valid JSON (malformed or truncated)",
            "not a JSON object",
            "a field has the wrong type",
            "missing key: ts",
            "userId is not an integer",
            "invalid UTF-8 bytes",
        ], strict=True)),
        "value string, _reason string",
    )
    assertDataFrameEqual(parsed, expected)


def test_loaded_and_quarantined_rows_partition_the_input(spark) -> None:
    parsed = bronze.parse_events(_raw(spark, [GOOD, "garbage"]))
    loaded = bronze.loaded_rows(parsed, bronze.schemas.EVENT_JSON, 7, F.lit(T0).cast("timestamp"))
    bad = bronze.quarantined_rows(parsed, "log_data", 7, "run-1", F.lit(T0).cast("timestamp"))
    assert loaded.select("userId", "sessionId", "ts", "_batch_id", "_source_file").collect() == [
        ("39", 38, 1541105830796, 7, "file:/land/log_data/2018/11/x.json")
    ]
    assertDataFrameEqual(
        bad,
        spark.createDataFrame(
            [("log_data", "file:/land/log_data/2018/11/x.json", "garbage", "not a JSON object", T0, 7, "run-1")],
            bronze.schemas.QUARANTINE,
        ),
    )


def test_fields_the_schema_does_not_name_are_rescued_with_their_json_types(spark) -> None:
    lines = [
        GOOD,
        GOOD[:-1] + ',"appVersion":"2.1","build":7,"flags":{"beta":true},"tags":[1,"a"]}',
        '{"ts": 1, "sessionId": 1, "itemInSession": 0, "userId": "1", "extra": null}',
        "not json",
    ]
    parsed = bronze.parse_events(_raw(spark, lines)).select("_rescued_data")
    expected = [None, '{"appVersion":"2.1","build":7,"flags":{"beta":true},"tags":[1,"a"]}', '{"extra":null}', None]
    assert [r[0] for r in parsed.collect()] == expected
    loaded = bronze.loaded_rows(bronze.parse_events(_raw(spark, lines)), bronze.schemas.EVENT_JSON, 0, F.current_timestamp())
    counts = bronze.rescued_field_counts(loaded)
    assertDataFrameEqual(counts, spark.createDataFrame(
        [("appVersion", 1), ("build", 1), ("flags", 1), ("tags", 1), ("extra", 1)], "field string, rows long"))


def test_song_file_with_two_objects_is_quarantined(spark) -> None:
    one = '{"song_id": "SOA", "title": "T", "artist_id": "ARX", "duration": 1.0, "year": 0}'
    parsed = bronze.parse_songs(_raw(spark, [one, one + "\n" + one.replace("SOA", "SOB"), '{"title": "no id"}']))
    assert [r._reason for r in parsed.orderBy(F.length("value")).collect()] == [
        "missing key: song_id",
        None,
        "more than one song object in the file",
    ]
