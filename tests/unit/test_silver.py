from __future__ import annotations

import datetime

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from lakehouse import schemas
from lakehouse.flows import silver

TS = datetime.datetime(2018, 11, 1, 0, 0, 0)
FILE = "file:/land/x.json"


def _raw_event(user="7", session=1, item=0, ts=1541030400000, level="free", page="NextSong", song=" Song ", ua='"Mozilla"'):
    return (None, "Logged In", "Ann", "F", item, "Lee", 200.0, level, "NYC", "PUT", page, 1.5e12,
            session, song, 200, ts, ua, user, None, FILE, TS, TS, 0)


def test_clean_events_types_trims_and_dedups(spark) -> None:
    raw = spark.createDataFrame(
        [_raw_event(), _raw_event(), _raw_event(user="", item=1, page="Home", song="", ua="")],
        schemas.BRONZE_EVENTS,
    )
    events = silver.clean_events(raw).select("user_id", "item_in_session", "start_time", "song_title", "user_agent", "page")
    expected = spark.createDataFrame(
        [(7, 0, datetime.datetime(2018, 11, 1), "Song", "Mozilla", "NextSong"),
         (None, 1, datetime.datetime(2018, 11, 1), None, None, "Home")],
        "user_id long, item_in_session long, start_time timestamp, song_title string, user_agent string, page string",
    )
    assertDataFrameEqual(events, expected)


def test_mostly_unique_keys_keep_the_same_rows_as_the_window(spark) -> None:
    """Repeated keys (a NULL user_id among them) go through the window; unique keys pass as they are."""
    df = spark.createDataFrame(
        [(1, 10, "a"), (1, 10, "c"), (None, 10, "x"), (None, 10, "y"), (None, 11, "z"), (2, 10, "b")],
        "user_id long, ts long, v string",
    )
    order = [F.col("v").desc()]
    expected = spark.createDataFrame([(1, 10, "c"), (None, 10, "y"), (None, 11, "z"), (2, 10, "b")], "user_id long, ts long, v string")
    assertDataFrameEqual(silver.latest_per_mostly_unique_key(df, ["user_id", "ts"], order), expected)
    assertDataFrameEqual(silver.latest_per_key(df, ["user_id", "ts"], order), expected)


def _events(spark, rows):
    """rows: (user_id, ts_seconds, level)"""
    raw = spark.createDataFrame(
        [_raw_event(user=str(u), item=i, ts=ts * 1000, level=lvl) for i, (u, ts, lvl) in enumerate(rows)],
        schemas.BRONZE_EVENTS,
    )
    return silver.clean_events(raw)


def test_level_history_is_scd2_in_event_order(spark) -> None:
    # user 7: free, free, paid, free (given out of order); user 8: paid only
    events = _events(spark, [(7, 300, "paid"), (7, 100, "free"), (7, 200, "free"), (7, 400, "free"), (8, 150, "paid")])
    t = lambda s: datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=s)  # noqa: E731
    expected = spark.createDataFrame(
        [(7, "free", t(100), t(300), False), (7, "paid", t(300), t(400), False), (7, "free", t(400), None, True),
         (8, "paid", t(150), None, True)],
        schemas.SILVER_USER_LEVELS,
    )
    assertDataFrameEqual(silver.level_history(events), expected)


def test_level_changes_in_one_millisecond_give_one_row_per_key(spark) -> None:
    """Two events of a user in the same ms with other levels: the later (session_id, item_in_session) wins."""
    raw = spark.createDataFrame(
        [_raw_event(user="7", session=1, item=0, ts=100_000, level="free"),
         _raw_event(user="7", session=1, item=5, ts=200_000, level="paid"),   # same instant, earlier session: loses
         _raw_event(user="7", session=2, item=0, ts=200_000, level="free"),   # ... so the level never changed
         _raw_event(user="7", session=2, item=1, ts=300_000, level="paid"),
         _raw_event(user="8", session=3, item=2, ts=100_000, level="free"),
         _raw_event(user="8", session=3, item=1, ts=100_000, level="paid")],  # lower item_in_session: loses
        schemas.BRONZE_EVENTS,
    )
    t = lambda s: datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=s)  # noqa: E731
    expected = spark.createDataFrame(
        [(7, "free", t(100), t(300), False), (7, "paid", t(300), None, True), (8, "free", t(100), None, True)],
        schemas.SILVER_USER_LEVELS,
    )
    events = silver.clean_events(raw)
    assertDataFrameEqual(silver.level_history(events), expected)
    # The same from a daily run that starts at the tie: the older row stands in for the first event.
    from pyspark.sql import functions as F

    starts = spark.createDataFrame([(7, 200_000), (8, 100_000)], "user_id long, since_ts long")
    older = silver.level_history(events.where(F.col("ts") < 200_000))
    assertDataFrameEqual(silver.level_history_since(older, events, starts), expected)


def test_a_field_rescued_before_it_joined_the_schema_fills_its_column(spark) -> None:
    """Rows that landed before `appVersion` joined EVENT_JSON carry it in _rescued_data; read through
    with_rescued_fields they hold it in the column, like rows that land after the change."""
    from pyspark.sql.types import StringType, StructField, StructType

    from lakehouse.record import bronze

    raw = spark.createDataFrame(
        [_raw_event(item=0)[:18] + ('{"appVersion":"2.1","build":7}',) + _raw_event()[19:],
         _raw_event(item=1)[:18] + (None,) + _raw_event()[19:]],
        schemas.BRONZE_EVENTS,
    )
    evolved = StructType([*schemas.EVENT_JSON.fields, StructField("appVersion", StringType())])
    filled = bronze.with_rescued_fields(raw, evolved).select("itemInSession", "appVersion", "userId")
    assertDataFrameEqual(filled, spark.createDataFrame([(0, "2.1", "7"), (1, None, "7")], "itemInSession long, appVersion string, userId string"))


def test_level_history_since_equals_a_full_recompute(spark) -> None:
    """Old rows stand in for old events: in-order days, a late day and a tie at a boundary all agree."""
    import random

    from pyspark.sql import functions as F

    rng = random.Random(7)
    rows = [(u, ts * 10, rng.choice(["free", "paid"])) for u in (1, 2, 3) for ts in rng.sample(range(200), 25)]
    events = _events(spark, rows).cache()
    # New events: all of them, the later ones, a late "day" before old events, the very last ones.
    for lo, hi in ((0, 2000), (500, 2000), (500, 1200), (1990, 2000)):
        is_new = F.col("ts").between(lo * 1000, hi * 1000 - 1) & (F.col("user_id") != 3)  # user 3: nothing new
        old, new = events.where(~is_new), events.where(is_new)
        everything = old.unionByName(new)
        starts = new.groupBy("user_id").agg(F.min("ts").alias("since_ts"))
        recomputed = silver.level_history_since(silver.level_history(old), everything, starts)
        untouched = silver.level_history(old).join(starts, "user_id", "left_anti")
        assertDataFrameEqual(recomputed.unionByName(untouched), silver.level_history(everything))


def test_level_starts_skips_users_whose_history_cannot_change(spark) -> None:
    old = _events(spark, [(1, 10, "free"), (2, 10, "free"), (3, 10, "free"), (3, 30, "paid")])
    new = _events(spark, [(1, 40, "free"), (2, 40, "paid"), (3, 20, "paid"), (4, 40, "free")])
    starts = silver.level_starts(new, silver.level_history(old), silver.latest_user_rows(old))
    # 1: later events, same level (unchanged); 2: a new level; 3: an event before its latest; 4: new user.
    assertDataFrameEqual(starts, spark.createDataFrame([(2, 40_000), (3, 20_000), (4, 40_000)], "user_id long, since_ts long"))


def test_latest_user_row_wins_whatever_the_page(spark) -> None:
    events = _events(spark, [(7, 100, "free"), (7, 300, "paid"), (7, 200, "free")])
    users = silver.latest_user_rows(events).select("user_id", "level", "latest_ts")
    assertDataFrameEqual(users, spark.createDataFrame([(7, "paid", 300_000)], "user_id long, level string, latest_ts long"))


def _song(song_id, artist_id, name, location, lat, modified, year=0):
    return (1, artist_id, lat, lat, location, name, song_id, f" Title {song_id} ", 100.0, year, None,
            f"file:/land/{song_id}.json", modified, TS, 0)


def test_songs_year_zero_is_null_and_newest_file_wins(spark) -> None:
    raw = spark.createDataFrame(
        [_song("S1", "A1", "Old", "", None, TS, year=0),
         _song("S1", "A1", "New", "Paris", 1.0, TS + datetime.timedelta(days=1), year=1999)],
        schemas.BRONZE_SONGS,
    )
    songs = silver.clean_songs(raw).select("song_id", "title", "artist_name", "artist_location", "year")
    assertDataFrameEqual(songs, spark.createDataFrame([("S1", "Title S1", "New", "Paris", 1999)], songs.schema))
    raw_zero = spark.createDataFrame([_song("S2", "A1", "X", "", None, TS)], schemas.BRONZE_SONGS)
    assert silver.clean_songs(raw_zero).select("year", "artist_location").collect() == [(None, None)]


def test_artist_rule_most_complete_then_newest_then_smallest_song(spark) -> None:
    later = TS + datetime.timedelta(days=1)
    raw = spark.createDataFrame(
        [
            _song("S1", "A1", "Complete", "Paris", 1.0, TS),        # most complete -> wins for A1
            _song("S2", "A1", "Newer but bare", "", None, later),
            _song("S3", "A2", "Old", "Rome", None, TS),
            _song("S4", "A2", "New", "Oslo", None, later),          # same completeness, newer -> wins for A2
            _song("S5", "A3", "B", "", None, TS),
            _song("S6", "A3", "C", "", None, TS),                    # tie -> smallest song_id (S5)
        ],
        schemas.BRONZE_SONGS,
    )
    artists = silver.artists_from_songs(silver.clean_songs(raw)).select("artist_id", "name", "location")
    expected = spark.createDataFrame(
        [("A1", "Complete", "Paris"), ("A2", "New", "Oslo"), ("A3", "B", None)], "artist_id string, name string, location string"
    )
    assertDataFrameEqual(artists, expected)
