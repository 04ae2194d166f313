from __future__ import annotations

from lakehouse import tables as T


def test_named_in_finds_the_tables_a_query_names_and_nothing_else() -> None:
    query = """SELECT * FROM gold.songplays p JOIN `gold`.`users` u ON p.user_id = u.user_id
               JOIN GOLD . time VERSION AS OF 2 t USING (start_time)  -- a name in a comment counts too: silver.events
               WHERE p.level = 'paid' AND gold_songs = 1"""
    assert [t.qualified for t in T.named_in(query)] == ["silver.events", "gold.songplays", "gold.users", "gold.time"]


def test_named_in_ignores_unknown_tables_and_plain_columns() -> None:
    assert T.named_in("SELECT gold.nope, a.b FROM t") == []
    assert T.named_in("SHOW DATABASES") == []
