"""Silver: typed, trimmed, '' -> NULL, one row per natural key. Pure DataFrame -> DataFrame functions."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse import schemas
from lakehouse.record import bronze

EVENT_KEY = ("user_id", "session_id", "item_in_session", "ts")
# Silver event columns that are a landed text field, trimmed, '' -> NULL (silver name -> landing field).
# A field that joins schemas.EVENT_JSON reaches silver with one line here (and its SILVER_EVENTS column);
# `run full` then fills it for rows that landed before, from bronze's `_rescued_data`.
EVENT_TEXT_FIELDS = {
    "page": "page", "auth": "auth", "first_name": "firstName", "last_name": "lastName", "gender": "gender",
    "location": "location", "song_title": "song", "artist_name": "artist", "method": "method",
}
# In a MERGE: the source row comes from a newer landed file than the target row (same order as _newest_file).
NEWER_FILE = "struct(s._source_modified_at, s._source_file) > struct(t._source_modified_at, t._source_file)"


# Deterministic "latest" among records that share a key: the most recently modified file, then its path.
def _newest_file() -> tuple[Column, Column]:
    return F.col("_source_modified_at").desc_nulls_last(), F.col("_source_file").desc_nulls_last()


def text(col: str | Column) -> Column:
    """Trimmed string, NULL when empty."""
    trimmed = F.trim(F.col(col) if isinstance(col, str) else col)
    return F.when(trimmed == "", F.lit(None)).otherwise(trimmed)


def latest_per_key(df: DataFrame, keys: Sequence[str], order: Sequence[Column]) -> DataFrame:
    """Keep one row per key: the first by `order`."""
    window = Window.partitionBy(*keys).orderBy(*order)
    return df.withColumn("_rn", F.row_number().over(window)).where("_rn = 1").drop("_rn")


def latest_per_mostly_unique_key(df: DataFrame, keys: Sequence[str], order: Sequence[Column]) -> DataFrame:
    """`latest_per_key` for rows whose keys are nearly all unique (events): the same rows, without sorting them all.

    A hash aggregate finds the keys that occur more than once (a shuffle of the key columns only); only their
    rows go through the window, the others pass as they are. A window over every row sorts each row twice
    (Spark 4.2 adds a partial window-group limit before the shuffle), which dominated the rebuild of silver.events.
    """
    counted = df.groupBy(*keys).agg(F.count(F.lit(1)).alias("_n")).where("_n > 1")
    repeated = F.broadcast(counted.select(*[F.col(k).alias(f"_repeated_{k}") for k in keys]))
    same_key = [F.col(k).eqNullSafe(F.col(f"_repeated_{k}")) for k in keys]  # a NULL user_id is a key value too
    once = df.join(repeated, same_key, "left_anti")
    again = latest_per_key(df.join(repeated, same_key, "left_semi"), keys, order)
    return once.unionByName(again)


def clean_songs(raw_songs: DataFrame) -> DataFrame:
    """bronze.songs_raw -> silver.songs: one row per song_id; year 0 -> NULL; the newest file wins."""
    songs = raw_songs.transform(bronze.with_rescued_fields, schemas.SONG_JSON).select(
        text("song_id").alias("song_id"),
        text("title").alias("title"),
        text("artist_id").alias("artist_id"),
        text("artist_name").alias("artist_name"),
        text("artist_location").alias("artist_location"),
        F.col("artist_latitude").alias("artist_latitude"),
        F.col("artist_longitude").alias("artist_longitude"),
        F.when(F.col("year") > 0, F.col("year")).cast("int").alias("year"),
        F.col("duration").alias("duration"),
        "_source_file",
        "_source_modified_at",
    )
    return latest_per_key(songs, ["song_id"], _newest_file()).select(*schemas.SILVER_SONGS.fieldNames())


def artists_from_songs(songs: DataFrame) -> DataFrame:
    """silver.songs -> silver.artists: one row per artist_id.

    When song files disagree about an artist, the most complete record wins (name, location,
    latitude, longitude present), then the most recently modified file, then the smallest song_id.
    """
    completeness = sum(
        (F.col(c).isNotNull().cast("int") for c in ("artist_name", "artist_location", "artist_latitude", "artist_longitude")),
        F.lit(0),
    )
    ranked = latest_per_key(
        songs.where(F.col("artist_id").isNotNull()).withColumn("_completeness", completeness),
        ["artist_id"],
        [F.col("_completeness").desc(), F.col("_source_modified_at").desc_nulls_last(), F.col("song_id").asc()],
    )
    return ranked.select(
        "artist_id",
        F.col("artist_name").alias("name"),
        F.col("artist_location").alias("location"),
        F.col("artist_latitude").alias("latitude"),
        F.col("artist_longitude").alias("longitude"),
    )


def clean_events(raw_events: DataFrame) -> DataFrame:
    """bronze.events_raw -> silver.events: typed and cleaned, one row per (user_id, session_id, item_in_session, ts).

    Empty userId (logged-out pages) becomes NULL; the literal quotes around user agents are removed.
    """
    user_agent = text("userAgent")
    events = raw_events.transform(bronze.with_rescued_fields, schemas.EVENT_JSON).select(
        text("userId").cast("long").alias("user_id"),
        F.col("sessionId").alias("session_id"),
        F.col("itemInSession").alias("item_in_session"),
        F.col("ts").alias("ts"),
        F.timestamp_millis(F.col("ts")).alias("start_time"),
        F.to_date(F.timestamp_millis(F.col("ts"))).alias("event_date"),
        F.lower(text("level")).alias("level"),
        text(F.regexp_replace(user_agent, r'^"(.*)"$', "$1")).alias("user_agent"),
        F.col("length").alias("length"),
        *[text(field).alias(column) for column, field in EVENT_TEXT_FIELDS.items()],
        F.col("status").cast("int").alias("status"),
        F.col("registration").cast("long").alias("registration"),
        "_source_file",
        "_source_modified_at",
    )
    return latest_per_mostly_unique_key(events, list(EVENT_KEY), _newest_file()).select(*schemas.SILVER_EVENTS.fieldNames())


def _latest_event_first() -> list[Column]:
    return [F.col("ts").desc(), F.col("session_id").desc(), F.col("item_in_session").desc()]


def latest_user_rows(events: DataFrame) -> DataFrame:
    """silver.events -> silver.users: one row per user_id as of the user's latest event (any page)."""
    users = events.where(F.col("user_id").isNotNull())
    return latest_per_key(users, ["user_id"], _latest_event_first()).select(
        "user_id",
        "first_name",
        "last_name",
        "gender",
        "level",
        "location",
        F.col("ts").alias("latest_ts"),
        F.col("session_id").alias("latest_session_id"),
        F.col("item_in_session").alias("latest_item_in_session"),
    )


def level_history(events: DataFrame) -> DataFrame:
    """silver.events -> silver.user_levels (SCD2): one row per user and unbroken run of one level.

    valid_from is the first event of the run; valid_to the first event of the next run (NULL when current).
    Events of one user in the same millisecond count as one: the last by (session_id, item_in_session)
    gives the level at that instant, so (user_id, valid_from) stays a key.
    """
    by_time = Window.partitionBy("user_id").orderBy("ts", "session_id", "item_in_session")
    last_at_instant = (
        events.where(F.col("user_id").isNotNull() & F.col("level").isNotNull())
        .withColumn("_next_ts", F.lead("ts").over(by_time))
        .where(F.col("_next_ts").isNull() | (F.col("_next_ts") != F.col("ts")))
    )
    changes = (
        last_at_instant
        .withColumn("_previous", F.lag("level").over(by_time))
        .where(F.col("_previous").isNull() | (F.col("_previous") != F.col("level")))
    )
    next_change = Window.partitionBy("user_id").orderBy("ts", "session_id", "item_in_session")
    return changes.select(
        "user_id",
        "level",
        F.col("start_time").alias("valid_from"),
        F.lead("start_time").over(next_change).alias("valid_to"),
    ).withColumn("is_current", F.col("valid_to").isNull())


def level_history_since(levels: DataFrame, events: DataFrame, starts: DataFrame) -> DataFrame:
    """silver.user_levels of the users in `starts`, recomputed from each user's earliest new event on.

    `starts` holds (user_id, since_ts): the earliest ts of the user's new events. `levels` are the
    existing rows, `events` silver events (only those with ts >= since_ts are used). Each existing row
    that began before since_ts stands in for the run of events it summarises, so a daily run reads the
    new day's events only, yet gives the same rows as `level_history` over all events.
    """
    since = F.col("since_ts")
    earlier = levels.join(starts, "user_id").where(F.unix_millis("valid_from") < since).select(
        "user_id",
        "level",
        F.unix_millis("valid_from").alias("ts"),
        F.lit(None).cast("long").alias("session_id"),
        F.lit(None).cast("long").alias("item_in_session"),
        F.col("valid_from").alias("start_time"),
    )
    later = events.join(starts, "user_id").where(F.col("ts") >= since).select(*earlier.columns)
    return level_history(earlier.unionByName(later))


def level_starts(new_events: DataFrame, levels: DataFrame, users: DataFrame) -> DataFrame:
    """(user_id, since_ts) of the users whose level history `new_events` can change.

    A user's rows stay as they are when every new event comes after the user's latest event so far
    (`users` as of before the batch) and carries the level of the user's current row.
    """
    new = new_events.where(F.col("user_id").isNotNull() & F.col("level").isNotNull()).groupBy("user_id").agg(
        F.min("ts").alias("since_ts"), F.min("level").alias("_lowest"), F.max("level").alias("_highest")
    )
    current = levels.where(F.col("is_current")).select("user_id", F.col("level").alias("_current"))
    unchanged = (
        new.join(current, "user_id")
        .join(users.select("user_id", "latest_ts"), "user_id")
        .where((F.col("since_ts") > F.col("latest_ts")) & (F.col("_lowest") == F.col("_highest"))
               & (F.col("_lowest") == F.col("_current")))
    )
    return new.join(unchanged.select("user_id"), "user_id", "left_anti").select("user_id", "since_ts")
