"""Every silver and gold table, declared once: its inputs, its pure transform, its key and its write.

A flow's `build` gets a `Rows` view of its inputs (lakehouse.flows.flow) and returns the rows to write.
The same code serves both kinds of run (lakehouse.flows.runner executes them):
- `run full`: each input is read whole, `previous` is empty, and the rows overwrite the table (one new
  version);
- `run incremental`: each input gives only the rows that changed since the flow last read it (Change
  Data Feed from the flow's watermark), `previous` is the table as it stands, and the rows are merged
  with the flow's write strategy. `rows.narrow` and `rows.incremental` are where the incremental run
  reads less, as a dbt model's `is_incremental()` block does; without them the result would be the same.

Flows run in the order declared here; each input is bronze or a table declared above it.
"""

from __future__ import annotations

from pyspark.sql import functions as F

from lakehouse import tables as T
from lakehouse.flows import gold, silver
from lakehouse.flows.flow import Batch, Flow, InsertNew, ReplaceKeys, Rows, Upsert


# ------------------------------------------------------------------------------ silver
def _events(rows: Rows) -> Batch:
    return Batch(silver.clean_events(rows.new(T.EVENTS_RAW)))


def _user_levels(rows: Rows) -> Batch | None:
    """Level history of the users whose new events can change it, from each one's earliest new event on."""
    new = rows.new(T.EVENTS)
    if not rows.incremental:
        return Batch(silver.level_history(new))
    # silver.users as of before this run (its flow comes next): a user whose new events all come after
    # the latest one so far and carry the current level keeps the rows it has.
    starts = rows.keep("starts", silver.level_starts(new, rows.previous(), rows.current(T.USERS)))
    since = starts.agg(F.min("since_ts")).head()[0]  # type: ignore[index]
    if since is None:
        return None
    # The ts literal lets Delta skip event files older than every change.
    recent = rows.current(T.EVENTS).where(F.col("ts") >= int(since))
    return Batch(silver.level_history_since(rows.previous(), recent, F.broadcast(starts)), starts.select("user_id"))


def _users(rows: Rows) -> Batch:
    return Batch(silver.latest_user_rows(rows.new(T.EVENTS)))


def _songs(rows: Rows) -> Batch:
    return Batch(silver.clean_songs(rows.new(T.SONGS_RAW)))


def _artists(rows: Rows) -> Batch:
    """Every artist a changed song names (before or after the change), from all of that artist's songs."""
    affected = rows.new(T.SONGS, preimages=True).where(F.col("artist_id").isNotNull()).select("artist_id").distinct()
    their_songs = rows.narrow(rows.current(T.SONGS), affected)
    return Batch(silver.artists_from_songs(their_songs), affected)


# A later latest event, or the same latest event corrected by a newer file (its values differ).
_LATEST = "struct(s.latest_ts, s.latest_session_id, s.latest_item_in_session)"
_THEIR_LATEST = "struct(t.latest_ts, t.latest_session_id, t.latest_item_in_session)"
_USER_DIFFERS = " OR ".join(f"NOT (s.{c} <=> t.{c})" for c in T.USERS.schema.fieldNames())
NEWER_USER_ROW = f"{_LATEST} > {_THEIR_LATEST} OR ({_LATEST} = {_THEIR_LATEST} AND ({_USER_DIFFERS}))"


# ------------------------------------------------------------------------------ gold
def _songplays(rows: Rows) -> Batch:
    """Plays of new (or corrected) events; in a daily run also earlier plays that a late or changed song may now match."""
    candidates = gold.plays(rows.new(T.EVENTS))
    if rows.incremental and rows.changed(T.SONGS):
        titles = rows.new(T.SONGS, preimages=True).select(F.col("title").alias("song_title"), "artist_name").distinct()
        earlier = gold.plays(rows.current(T.EVENTS)).join(F.broadcast(titles), ["song_title", "artist_name"], "left_semi")
        candidates = candidates.unionByName(earlier).dropDuplicates(list(T.EVENTS.key))
    return Batch(gold.songplays(candidates, rows.current(T.SONGS)))


def _time(rows: Rows) -> Batch:
    return Batch(gold.time_rows(rows.new(T.SONGPLAYS)))


def _gold_users(rows: Rows) -> Batch:
    """Users with a play: the new players and the players whose silver row changed."""
    new_players = rows.new(T.SONGPLAYS).select("user_id")
    affected = rows.new(T.USERS).select("user_id").unionByName(new_players).distinct()
    players = rows.previous().select("user_id").unionByName(new_players)
    return Batch(gold.users(rows.narrow(rows.current(T.USERS), affected), players))


def _gold_songs(rows: Rows) -> Batch:
    return Batch(gold.songs(rows.latest(T.SONGS)))


def _gold_artists(rows: Rows) -> Batch:
    return Batch(gold.artists(rows.latest(T.ARTISTS)))


def flows() -> tuple[Flow, ...]:
    """Every flow, in the order they run; resolved when called, so a table whose schema changed takes effect at once."""
    return (
        # A key seen before is replaced only by a row from a newer landed file (a corrected re-upload).
        Flow(T.EVENTS, (T.EVENTS_RAW,), _events, Upsert(when=silver.NEWER_FILE, ranges=("ts",)), quality="events"),
        Flow(T.USER_LEVELS, (T.EVENTS,), _user_levels, ReplaceKeys(scope=("user_id",)), reads=(T.USERS,)),
        Flow(T.USERS, (T.EVENTS,), _users, Upsert(when=NEWER_USER_ROW)),
        Flow(T.SONGS, (T.SONGS_RAW,), _songs, Upsert(when=silver.NEWER_FILE), quality="songs"),
        Flow(T.ARTISTS, (T.SONGS,), _artists, ReplaceKeys(scope=("artist_id",))),
        # A late song changes song_id/artist_id, a corrected event any column: update when any differs.
        Flow(T.SONGPLAYS, (T.EVENTS, T.SONGS), _songplays, Upsert(ranges=("start_time", "year"))),
        Flow(T.TIME, (T.SONGPLAYS,), _time, InsertNew(ranges=("start_time",))),
        Flow(T.GOLD_USERS, (T.USERS, T.SONGPLAYS), _gold_users, Upsert(compare_first=True)),
        Flow(T.GOLD_SONGS, (T.SONGS,), _gold_songs, Upsert(compare_first=True)),
        Flow(T.GOLD_ARTISTS, (T.ARTISTS,), _gold_artists, Upsert(compare_first=True)),
    )


def check_order(declared: tuple[Flow, ...]) -> None:
    """Each flow's inputs are bronze tables or built by a flow declared before it."""
    built: set[str] = set()
    for flow in declared:
        late = [t.qualified for t in flow.inputs if t.layer != "bronze" and t.qualified not in built]
        if late:
            raise AssertionError(f"flow {flow.name} reads {', '.join(late)} before it is built")
        built.add(flow.name)


check_order(flows())
