"""Peer baseline: a one-file Sparkify data-lake ETL written the way such projects usually are.

Reads every song and log JSON file with schema inference, builds the five star-schema tables and
overwrites them as Parquet: songs partitioned by (year, artist_id), time and songplays by
(year, month), users and artists plain. Songplays come from joining NextSong log rows to the song
files on title, artist name and duration. Nothing is incremental: every run reads everything.

It uses Spark's built-in functions (no Python UDFs), so the baseline is not slowed down on purpose.
`python benchmarks/peer_etl.py SOURCE OUT` is what the benchmark runs, in a process of its own. Its
session has every setting of the lakehouse's session factory (`lakehouse.session.spark_conf`: master,
driver memory, shuffle partitions, file and join sizing, AQE off) except Delta's SQL extension, catalog
and `spark.databricks.delta.*` settings, so the peer is neither slowed down nor helped by the sizing.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TABLES = ("songs", "artists", "users", "time", "songplays")


def process_song_data(spark: SparkSession, source: str, out: str) -> DataFrame:
    """Read all song files, write the songs and artists tables; return the song DataFrame."""
    song_df = spark.read.json(f"{source}/song_data/*/*/*/*.json")

    songs_table = song_df.select("song_id", "title", "artist_id", "year", "duration").dropDuplicates(["song_id"])
    songs_table.write.mode("overwrite").partitionBy("year", "artist_id").parquet(f"{out}/songs")

    artists_table = song_df.select(
        "artist_id",
        F.col("artist_name").alias("name"),
        F.col("artist_location").alias("location"),
        F.col("artist_latitude").alias("latitude"),
        F.col("artist_longitude").alias("longitude"),
    ).dropDuplicates(["artist_id"])
    artists_table.write.mode("overwrite").parquet(f"{out}/artists")
    return song_df


def process_log_data(spark: SparkSession, source: str, out: str, song_df: DataFrame) -> None:
    """Read all log files, write the users, time and songplays tables."""
    log_df = spark.read.json(f"{source}/log_data/*/*/*.json")
    log_df = log_df.where(F.col("page") == "NextSong")

    users_table = log_df.select(
        F.col("userId").alias("user_id"),
        F.col("firstName").alias("first_name"),
        F.col("lastName").alias("last_name"),
        "gender",
        "level",
    ).dropDuplicates(["user_id"])
    users_table.write.mode("overwrite").parquet(f"{out}/users")

    log_df = log_df.withColumn("start_time", (F.col("ts") / 1000).cast("timestamp"))
    time_table = log_df.select("start_time").dropDuplicates().select(
        "start_time",
        F.hour("start_time").alias("hour"),
        F.dayofmonth("start_time").alias("day"),
        F.weekofyear("start_time").alias("week"),
        F.month("start_time").alias("month"),
        F.year("start_time").alias("year"),
        F.dayofweek("start_time").alias("weekday"),
    )
    time_table.write.mode("overwrite").partitionBy("year", "month").parquet(f"{out}/time")

    joined = log_df.join(
        song_df,
        (log_df.song == song_df.title) & (log_df.artist == song_df.artist_name) & (log_df.length == song_df.duration),
        "left",
    )
    songplays_table = joined.select(
        F.monotonically_increasing_id().alias("songplay_id"),
        "start_time",
        F.col("userId").alias("user_id"),
        "level",
        "song_id",
        "artist_id",
        F.col("sessionId").alias("session_id"),
        "location",
        F.col("userAgent").alias("user_agent"),
        F.year("start_time").alias("year"),
        F.month("start_time").alias("month"),
    )
    songplays_table.write.mode("overwrite").partitionBy("year", "month").parquet(f"{out}/songplays")


def run_peer(spark: SparkSession, source: str, out: str) -> None:
    """Run the whole peer ETL: landing zone `source` -> Parquet tables under `out`."""
    song_df = process_song_data(spark, source, out)
    process_log_data(spark, source, out, song_df)


def is_delta_setting(key: str) -> bool:
    """Settings that exist for Delta Lake only (the peer writes plain Parquet)."""
    return key in ("spark.sql.extensions", "spark.sql.catalog.spark_catalog") or key.startswith("spark.databricks.delta.")


def peer_session(source: str, out: str, master: str | None = None) -> SparkSession:
    """A session with the lakehouse's settings (conf/<env>.toml, LAKEHOUSE_* variables) minus Delta's."""
    from pyspark.sql import SparkSession

    from lakehouse.config import load_settings
    from lakehouse.session import check_java, spark_conf

    settings = load_settings(overrides={"source": source, "warehouse": out, "spark.master": master})
    check_java()
    builder = SparkSession.builder
    for key, value in spark_conf(settings, "sparkify-peer-etl").items():
        if not is_delta_setting(key):
            builder = builder.config(key, value)
    if settings.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def main() -> None:
    """Standalone run: one process, one session, the whole ETL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="landing zone (with song_data/ and log_data/)")
    parser.add_argument("out", help="output folder for the Parquet tables")
    parser.add_argument("--master", help="Spark master (default: the lakehouse setting spark.master, local[2])")
    args = parser.parse_args()

    started = time.perf_counter()
    spark = peer_session(args.source, args.out, args.master)
    session_s = time.perf_counter() - started
    run_peer(spark, args.source, args.out)
    print(f"peer ETL done in {time.perf_counter() - started:.1f}s (Spark session {session_s:.1f}s)")
    spark.stop()


if __name__ == "__main__":
    main()
