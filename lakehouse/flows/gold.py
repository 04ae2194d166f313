"""Gold: the analytics star schema. Pure DataFrame -> DataFrame functions over silver."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import schemas

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
    The songs are grouped by (title, artist name) and broadcast; each play picks its best candidate from
    that small array, so the plays are never shuffled or sorted.
    """
    candidates = songs.groupBy(F.col("title").alias("_title"), F.col("artist_name").alias("_artist_name")).agg(
        F.collect_list(F.struct("duration", "song_id", "artist_id")).alias("_candidates")
    )
    joined = play_events.join(
        F.broadcast(candidates),
        (F.col("song_title") == F.col("_title")) & (F.col("artist_name") == F.col("_artist_name")),
        "left",
    )
    length = F.col("length")
    close = F.filter("_candidates", lambda song: F.abs(song["duration"] - length) <= DURATION_TOLERANCE_S)
    # Structs compare field by field: the smallest is the closest duration, then the smallest song_id.
    best = F.array_min(F.transform(close, lambda song: F.struct(
        F.abs(song["duration"] - length).alias("distance"), song["song_id"].alias("song_id"), song["artist_id"].alias("artist_id"))))
    return joined.withColumn("_best", best).select(
        *play_events.columns, F.col("_best.song_id").alias("song_id"), F.col("_best.artist_id").alias("artist_id")
    )


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
