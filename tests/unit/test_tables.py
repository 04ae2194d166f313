from __future__ import annotations

from lakehouse import tables as T
from lakehouse.pipeline import spark_jobs_started


def test_named_in_finds_the_tables_a_query_names_and_nothing_else() -> None:
    query = """SELECT * FROM gold.songplays p JOIN `gold`.`users` u ON p.user_id = u.user_id
               JOIN GOLD . time VERSION AS OF 2 t USING (start_time)  -- a name in a comment counts too: silver.events
               WHERE p.level = 'paid' AND gold_songs = 1"""
    assert [t.qualified for t in T.named_in(query)] == ["silver.events", "gold.songplays", "gold.users", "gold.time"]


def test_named_in_ignores_unknown_tables_and_plain_columns() -> None:
    assert T.named_in("SELECT gold.nope, a.b FROM t") == []
    assert T.named_in("SHOW DATABASES") == []


def test_overwrite_of_a_new_table_appends_and_a_replay_replaces(spark, make_settings) -> None:
    """A table that holds only its creation is appended to (no files to remove); overwriting it again replaces the rows."""
    wh = T.Warehouse(spark, make_settings())
    wh.ensure(T.GOLD_ARTISTS)
    rows = spark.createDataFrame([("a1", "Ana", None, None, None), ("a2", "Bo", "Oslo", 59.9, 10.7)], T.GOLD_ARTISTS.schema)
    first = wh.overwrite(T.GOLD_ARTISTS, rows)
    assert (first.version, first.metrics["numOutputRows"]) == (1, "2")
    assert wh.delta(T.GOLD_ARTISTS).history(1).head()["operationParameters"]["mode"] == "Append"
    again = wh.overwrite(T.GOLD_ARTISTS, rows)  # a flow replayed after a stop before its watermark moved
    assert again.version == 2 and wh.delta(T.GOLD_ARTISTS).history(1).head()["operationParameters"]["mode"] == "Overwrite"
    assert sorted(wh.read(T.GOLD_ARTISTS).collect()) == sorted(rows.collect())


def test_a_new_warehouses_tables_are_created_without_a_spark_job(spark, make_settings) -> None:
    """Creating a table is a commit of its first version only: Delta's file list for the .crc (the files of a version
    before the first, collected in a job) is off in the session's settings (lakehouse.session.spark_conf)."""
    wh = T.Warehouse(spark, make_settings())
    before = spark_jobs_started(spark)
    wh.ensure_all(T.ALL_TABLES)
    assert spark_jobs_started(spark) - before == 0
    assert all(wh.exists(t) and wh.version(t) == 0 for t in T.ALL_TABLES)
