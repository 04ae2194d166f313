"""Gold: the analytics star schema. Pure DataFrame -> DataFrame functions over silver."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import schemas
from lakehouse.silver import latest_per_key

DURATION_TOLERANCE_S = 0.01
NEXT_SONG = "NextSong"


def plays(events: DataFrame) -> DataFrame:
    """silver.events -> the events that are songplays: NextSong with a user_id."""
    return events.where((F.col("page") == NEXT_SONG) & F.col("user_id").isNotNull())


def songplay_id(events: DataFrame) -> DataFrame:
    """Add a deterministic songplay_id from the event's natural key (same id on every rerun or rebuild)."""
    key = F.concat_ws("|", "user_id", "session_id", "item_in_session", "ts")
    return events.withColumn("songplay_id", F.xxhash64(F.lit("songplay"), key))


def match_songs(play_events: DataFrame, songs: DataFrame) -> DataFrame:
    """Add song_id and artist_id: title equal, artist name equal, |length - duration| <= 0.01 s.

    When several songs qualify, the closest duration wins, then the smallest song_id. NULL when none does.
    """
    candidates = songs.select(
        F.col("song_id").alias("_song_id"),
        F.col("artist_id").alias("_artist_id"),
        F.col("title").alias("_title"),
        F.col("artist_name").alias("_artist_name"),
        F.col("duration").alias("_duration"),
    )
    joined = play_events.join(
        F.broadcast(candidates),
        (F.col("song_title") == F.col("_title"))
        & (F.col("artist_name") == F.col("_artist_name"))
        & (F.abs(F.col("length") - F.col("_duration")) <= DURATION_TOLERANCE_S),
        "left",
    )
    best = latest_per_key(
        joined,
        ["songplay_id"],
        [F.abs(F.col("length") - F.col("_duration")).asc_nulls_last(), F.col("_song_id").asc_nulls_last()],
    )
    return best.withColumnRenamed("_song_id", "song_id").withColumnRenamed("_artist_id", "artist_id")


def songplays(events: DataFrame, songs: DataFrame) -> DataFrame:
    """silver.events + silver.songs -> gold.songplays (one row per NextSong event with a user_id)."""
    matched = match_songs(plays(events).transform(songplay_id), songs)
    return matched.select(
        "songplay_id",
        "start_time",
        "user_id",
        "level",
        "song_id",
        "artist_id",
        "session_id",
        "location",
        "user_agent",
        F.year("start_time").alias("year"),
        F.month("start_time").alias("month"),
    )


def time_rows(songplay_rows: DataFrame) -> DataFrame:
    """gold.songplays -> gold.time: one row per distinct start_time; ISO week and weekday (1 = Monday)."""
    start = F.col("start_time")
    return (
        songplay_rows.select("start_time")
        .distinct()
        .select(
            start,
            F.hour(start).alias("hour"),
            F.dayofmonth(start).alias("day"),
            F.weekofyear(start).alias("week"),
            F.month(start).alias("month"),
            F.year(start).alias("year"),
            (F.weekday(start) + 1).alias("weekday"),
        )
    )


def users(silver_users: DataFrame, songplay_rows: DataFrame) -> DataFrame:
    """silver.users restricted to users with at least one songplay -> gold.users."""
    players = songplay_rows.select("user_id").distinct()
    return silver_users.join(players, "user_id", "left_semi").select(*schemas.GOLD_USERS.fieldNames())


def songs(silver_songs: DataFrame) -> DataFrame:
    """silver.songs -> gold.songs."""
    return silver_songs.select(*schemas.GOLD_SONGS.fieldNames())


def artists(silver_artists: DataFrame) -> DataFrame:
    """silver.artists -> gold.artists."""
    return silver_artists.select(*schemas.GOLD_ARTISTS.fieldNames())
