"""Gold on the real Sparkify data, checked against figures derived here from the raw JSON with plain Python."""

from __future__ import annotations

import collections
import datetime
import json
from pathlib import Path

import pytest

from lakehouse import tables as T

pytestmark = pytest.mark.e2e


def _text(value: object) -> str:
    """Spark reads a JSON number into a string column as its text; mirror that, then trim."""
    return "" if value is None else str(value).strip()


def _expected(root: Path) -> dict:
    songs = {}
    for f in sorted(root.glob("song_data/**/*.json")):
        s = json.loads(f.read_text())
        songs[s["song_id"]] = s
    events = [json.loads(line) for f in sorted(root.glob("log_data/**/*.json")) for line in f.read_text().splitlines() if line.strip()]
    order = lambda e: (e["ts"], e["sessionId"], e["itemInSession"])  # noqa: E731
    latest: dict[int, dict] = {}
    for e in events:
        if e["userId"] and (int(e["userId"]) not in latest or order(e) > order(latest[int(e["userId"])])):
            latest[int(e["userId"])] = e
    plays = {}
    for e in events:
        if e["page"] == "NextSong" and e["userId"]:
            plays[(int(e["userId"]), e["sessionId"], e["itemInSession"], e["ts"])] = e
    by_title = collections.defaultdict(list)
    for s in songs.values():
        by_title[(_text(s["title"]), _text(s["artist_name"]))].append(s)
    matched = collections.Counter()
    for (user, session, _, ts), e in plays.items():
        candidates = [s for s in by_title.get((_text(e["song"]), _text(e["artist"])), [])
                      if abs(e["length"] - s["duration"]) <= 0.01]
        best = min(candidates, key=lambda s: (abs(e["length"] - s["duration"]), s["song_id"]), default=None)
        start = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ts)
        matched[(user, session, start, best["song_id"] if best else None)] += 1
    starts = {datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=k[3]) for k in plays}
    time_rows = {(t, t.hour, t.day, t.isocalendar()[1], t.month, t.year, t.isoweekday()) for t in starts}
    return {
        "songplays": len(plays),
        "matched": sum(n for k, n in matched.items() if k[3]),
        "play_songs": matched,
        "users": {u: latest[u]["level"] for u in {k[0] for k in plays}},
        "songs": len(songs),
        "artists": len({s["artist_id"] for s in songs.values()}),
        "time": time_rows,
        "events": len(events),
    }


@pytest.mark.parametrize("copy", ["small", "full"])
def test_gold_matches_figures_from_the_raw_json(spark, real_warehouse, copy: str) -> None:
    built = real_warehouse(copy)
    settings, report = built.settings, built.report
    expected = _expected(built.root)
    wh = T.Warehouse(spark, settings)

    assert report.sources["log_data"].rows_in == expected["events"] == report.sources["log_data"].loaded
    plays = wh.read(T.SONGPLAYS)
    assert plays.count() == expected["songplays"]
    got = collections.Counter((r.user_id, r.session_id, r.start_time, r.song_id) for r in plays.collect())
    assert got == expected["play_songs"]
    assert plays.where("song_id IS NOT NULL").count() == expected["matched"]
    assert {r.user_id: r.level for r in wh.read(T.GOLD_USERS).collect()} == expected["users"]
    assert wh.read(T.GOLD_SONGS).count() == expected["songs"]
    assert wh.read(T.GOLD_ARTISTS).count() == expected["artists"]
    assert {tuple(r) for r in wh.read(T.TIME).collect()} == expected["time"]
