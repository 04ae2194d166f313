"""Erasure's pure parts: ids, whose rows are whose (bronze text, quarantine raw text), gold.time orphans."""

from __future__ import annotations

import datetime

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse import erasure
from lakehouse import tables as T
from lakehouse.errors import ConfigError
from lakehouse.record import bronze


def test_user_ids_are_whole_numbers() -> None:
    assert erasure.parse_user_ids(["17", " 4 ", "17"]) == [4, 17]
    for bad in ("x7", "-3", "1.5", "", "٣", "99999999999999999999"):
        with pytest.raises(ConfigError, match="--user-id"):
            erasure.parse_user_ids([bad])


def test_landed_lines_of_forgotten_users_are_dropped_whether_they_load_or_not(spark) -> None:
    lines = [
        '{"userId":"17","firstName":"Ann","ts":1,"sessionId":1,"itemInSession":0}',  # loads: dropped
        '{"userId":" 17 ","ts":"late","sessionId":1,"itemInSession":1}',  # would be quarantined: dropped
        '{"userId":"171","ts":2,"sessionId":1,"itemInSession":2}',  # another user whose id starts alike: kept
        '{"userId":"","ts":3,"sessionId":1,"itemInSession":3}',  # logged out: kept
        "not json at all",  # names no user: kept
    ]
    raw = spark.createDataFrame([(v, "f.json", None) for v in lines], "value string, _source_file string, _source_modified_at timestamp")
    kept = erasure.drop_landed(bronze.parse_events(raw), [17]).select("value")
    assertDataFrameEqual(kept, spark.createDataFrame([(v,) for v in lines[2:]], "value string"))
    assert erasure.drop_landed(raw, []) is raw


def test_quarantine_rows_belong_to_the_user_their_raw_text_names(spark) -> None:
    rows = [("log_data", '{"userId":"17","lastName":"Zed"}'), ("silver.events", '{"user_id":17,"first_name":"Ann"}'),
            ("log_data", '{"userId": 170}'), ("log_data", "garbage"), ("silver.events", '{"user_id":null}')]
    df = spark.createDataFrame(rows, "source string, raw string")
    assert [r.raw for r in df.where(erasure.belongs_to(T.QUARANTINE, [17])).collect()] == [rows[0][1], rows[1][1]]
    assert df.where(~erasure.belongs_to(T.QUARANTINE, [17])).count() == 3  # never NULL: the others stay


def test_time_rows_go_only_when_no_other_play_uses_them(spark) -> None:
    t1, t2 = datetime.datetime(2018, 11, 1, 10), datetime.datetime(2018, 11, 1, 11)
    plays = spark.createDataFrame([(17, t1), (17, t2), (4, t2), (None, t1)], "user_id long, start_time timestamp")
    assertDataFrameEqual(erasure.orphan_times(plays.where(F.col("user_id").isNotNull()), [17]),
                         spark.createDataFrame([(t1,)], "start_time timestamp"))


def test_changes_of_forgotten_users_are_dropped_for_tables_with_a_user(spark) -> None:
    changes = spark.createDataFrame([(17, "insert"), (4, "insert")], "user_id long, _change_type string")
    assert [r.user_id for r in erasure.drop_changes(T.EVENTS, changes, [17]).collect()] == [4]
    songs = spark.createDataFrame([("S1",)], "song_id string")
    assert erasure.drop_changes(T.SONGS, songs, [17]) is songs


def test_personal_columns_stay_out_of_file_statistics() -> None:
    assert T.SONGPLAYS.stats_columns is not None
    stats = T.SONGPLAYS.stats_columns.split(",")
    assert "location" not in stats and "user_agent" not in stats and "year" not in stats and "user_id" in stats
    assert T.SONGS.stats_columns is None
    for table in erasure.ERASED_TABLES:
        assert all(c in table.schema.fieldNames() for c in table.personal)
