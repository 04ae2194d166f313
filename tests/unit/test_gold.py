from __future__ import annotations

import datetime

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse import schemas
from lakehouse.flows import gold

EVENT_COLS = schemas.SILVER_EVENTS.fieldNames()


def _events(spark, rows):
    """rows: (user_id, item, page, song_title, artist_name, length, ts_ms)"""
    full = []
    for user, item, page, title, artist, length, ts in rows:
        start = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ts)
        full.append((user, 1, item, ts, start, start.date(), page, "Logged In", "free", "A", "B", "F", "NYC", "UA",
                     title, artist, length, "PUT", 200, 1, "f", start))
    return spark.createDataFrame(full, schemas.SILVER_EVENTS)


def _songs(spark, rows):
    return spark.createDataFrame(
        [(sid, title, aid, name, None, None, None, None, dur, "f", None) for sid, title, aid, name, dur in rows],
        schemas.SILVER_SONGS,
    )


def test_match_needs_title_artist_and_duration_within_10ms(spark) -> None:
    songs = _songs(spark, [("S1", "Fire", "A1", "Band", 200.0), ("S2", "Fire", "A2", "Other", 200.0),
                           ("S3", "Fire", "A1", "Band", 200.004), ("S9", "Tie", "A9", "Band", 100.0),
                           ("S5", "Tie", "A5", "Band", 100.0)])
    events = _events(spark, [
        (1, 0, "NextSong", "Fire", "Band", 200.005, 1_000),   # S3 (closest: 0.001) beats S1 (0.005)
        (1, 1, "NextSong", "Fire", "Band", 200.02, 2_000),    # too far from both
        (1, 2, "NextSong", "Fire", "Nobody", 200.0, 3_000),   # artist differs
        (1, 3, "NextSong", "Ice", "Band", 200.0, 4_000),      # title differs
        (1, 4, "Home", None, None, None, 5_000),              # not a play
        (None, 5, "NextSong", "Fire", "Band", 200.0, 6_000),  # logged out: not a songplay
        (1, 6, "NextSong", "Tie", "Band", 100.0, 7_000),      # S5 and S9 equally close: smallest song_id
    ])
    plays = gold.songplays(events, songs).select("user_id", "song_id", "artist_id", "start_time")
    t = lambda ms: datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)  # noqa: E731
    expected = spark.createDataFrame(
        [(1, "S3", "A1", t(1000)), (1, None, None, t(2000)), (1, None, None, t(3000)), (1, None, None, t(4000)),
         (1, "S5", "A5", t(7000))],
        "user_id long, song_id string, artist_id string, start_time timestamp",
    )
    assertDataFrameEqual(plays, expected)


def test_songplay_id_is_deterministic_and_distinct(spark) -> None:
    events = _events(spark, [(1, 0, "NextSong", "X", "Y", 1.0, 1_000), (1, 1, "NextSong", "X", "Y", 1.0, 1_000)])
    first = gold.songplays(events, _songs(spark, [])).select("songplay_id").collect()
    again = gold.songplays(events.orderBy(F.desc("item_in_session")), _songs(spark, [])).select("songplay_id").collect()
    assert sorted(first) == sorted(again)
    assert len({r[0] for r in first}) == 2


def test_time_rows_use_iso_week_and_weekday(spark) -> None:
    # 2018-11-04 was a Sunday (ISO weekday 7, ISO week 44); 2018-11-05 a Monday (weekday 1, week 45).
    plays = spark.createDataFrame(
        [(datetime.datetime(2018, 11, 4, 23, 30),), (datetime.datetime(2018, 11, 5, 0, 15),), (datetime.datetime(2018, 11, 5, 0, 15),)],
        "start_time timestamp",
    )
    expected = spark.createDataFrame(
        [(datetime.datetime(2018, 11, 4, 23, 30), 23, 4, 44, 11, 2018, 7), (datetime.datetime(2018, 11, 5, 0, 15), 0, 5, 45, 11, 2018, 1)],
        schemas.GOLD_TIME,
    )
    assertDataFrameEqual(gold.time_rows(plays), expected)


def test_gold_users_only_those_with_songplays(spark) -> None:
    users = spark.createDataFrame(
        [(1, "A", "B", "F", "paid", "NYC", 1, 1, 1), (2, "C", "D", "M", "free", "LA", 1, 1, 1)], schemas.SILVER_USERS
    )
    plays = spark.createDataFrame([(1,), (1,)], "user_id long")
    assertDataFrameEqual(gold.users(users, plays), spark.createDataFrame([(1, "A", "B", "F", "paid")], schemas.GOLD_USERS))
