"""Explicit schemas: landing JSON (never inferred), and the bronze/silver/gold tables."""

from __future__ import annotations

from pyspark.sql.types import (
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)


def _fields(spec: str) -> list[StructField]:
    types = {
        "string": StringType(),
        "long": LongType(),
        "int": IntegerType(),
        "double": DoubleType(),
        "timestamp": TimestampType(),
        "date": DateType(),
        "boolean": BooleanType(),
    }
    fields = []
    for item in spec.split(","):
        name, kind = item.split()
        fields.append(StructField(name, types[kind], True))
    return fields


def struct(spec: str) -> StructType:
    """StructType from 'name type, name type, ...' (all nullable)."""
    return StructType(_fields(spec))


# --- landing JSON, exactly as it lands -------------------------------------------------------------
SONG_JSON = struct(
    "num_songs long, artist_id string, artist_latitude double, artist_longitude double, artist_location string, "
    "artist_name string, song_id string, title string, duration double, year long"
)
EVENT_JSON = struct(
    "artist string, auth string, firstName string, gender string, itemInSession long, lastName string, "
    "length double, level string, location string, method string, page string, registration double, "
    "sessionId long, song string, status long, ts long, userAgent string, userId string"
)

# --- bronze: the source as it landed, plus lineage --------------------------------------------------
# `_rescued_data`: the record's fields that the JSON schema above does not name, as a JSON object with
# their values as landed (NULL when there are none), so no field is lost to schema drift.
RESCUED = struct("_rescued_data string")
LINEAGE = struct("_source_file string, _source_modified_at timestamp, _ingested_at timestamp, _batch_id long")


def bronze_schema(json_schema: StructType) -> StructType:
    """A bronze table's columns: the landing JSON's fields, the rescued fields, lineage."""
    return StructType(json_schema.fields + RESCUED.fields + LINEAGE.fields)


BRONZE_SONGS = bronze_schema(SONG_JSON)
BRONZE_EVENTS = bronze_schema(EVENT_JSON)
# The landed file versions read into bronze (a file re-uploaded with new content gets a second row).
LANDED_FILES = struct("source string, path string, modified_at timestamp, ingested_at timestamp, run_id string, etag string")
QUARANTINE = struct(
    "source string, file string, raw string, reason string, quarantined_at timestamp, batch_id long, run_id string"
)

# --- silver: typed, trimmed, '' -> NULL, one row per natural key -----------------------------------
SILVER_SONGS = struct(
    "song_id string, title string, artist_id string, artist_name string, artist_location string, "
    "artist_latitude double, artist_longitude double, year int, duration double, "
    "_source_file string, _source_modified_at timestamp"
)
SILVER_ARTISTS = struct("artist_id string, name string, location string, latitude double, longitude double")
SILVER_EVENTS = struct(
    "user_id long, session_id long, item_in_session long, ts long, start_time timestamp, event_date date, "
    "page string, auth string, level string, first_name string, last_name string, gender string, "
    "location string, user_agent string, song_title string, artist_name string, length double, "
    "method string, status int, registration long, _source_file string, _source_modified_at timestamp"
)
SILVER_USERS = struct(
    "user_id long, first_name string, last_name string, gender string, level string, location string, "
    "latest_ts long, latest_session_id long, latest_item_in_session long"
)
SILVER_USER_LEVELS = struct(
    "user_id long, level string, valid_from timestamp, valid_to timestamp, is_current boolean"
)

# --- gold: the analytics team's star schema ------------------------------------------------------
GOLD_SONGPLAYS = struct(
    "songplay_id long, start_time timestamp, user_id long, level string, song_id string, artist_id string, "
    "session_id long, location string, user_agent string, year int, month int"
)
GOLD_USERS = struct("user_id long, first_name string, last_name string, gender string, level string")
GOLD_SONGS = struct("song_id string, title string, artist_id string, year int, duration double")
GOLD_ARTISTS = struct("artist_id string, name string, location string, latitude double, longitude double")
GOLD_TIME = struct("start_time timestamp, hour int, day int, week int, month int, year int, weekday int")

# --- operations -------------------------------------------------------------------------------------
RUNS = struct(
    "run_id string, kind string, status string, started_at timestamp, ended_at timestamp, "
    "duration_s double, files_in long, rows_in long, rows_loaded long, rows_quarantined long, "
    "rows_written string, versions_written string, details string, error string"
)
# The erasure list (lakehouse.erasure): ids and when, nothing else about the user.
FORGOTTEN_USERS = struct("user_id long, forgotten_at timestamp, run_id string")
