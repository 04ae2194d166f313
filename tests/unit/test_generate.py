"""Unit tests for the synthetic Sparkify landing-zone generator (no Spark)."""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from lakehouse.generate import (
    LOG_KEYS,
    SONG_KEYS,
    GenerateSpec,
    GenerateSummary,
    generate,
    log_rel_path,
    song_rel_path,
)

SONG_RE = re.compile(r"song_data/[A-Z]/[A-Z]/[A-Z]/TR[A-Z0-9]{16}\.json")
LOG_RE = re.compile(r"log_data/\d{4}/\d{2}/\d{4}-\d{2}-\d{2}-events\.json")

SPEC = GenerateSpec(songs=120, users=25, days=3, events_per_day=1500, seed=7)

EXPECTED_SONG_KEYS = [
    "num_songs",
    "artist_id",
    "artist_latitude",
    "artist_longitude",
    "artist_location",
    "artist_name",
    "song_id",
    "title",
    "duration",
    "year",
]
EXPECTED_LOG_KEYS = [
    "artist",
    "auth",
    "firstName",
    "gender",
    "itemInSession",
    "lastName",
    "length",
    "level",
    "location",
    "method",
    "page",
    "registration",
    "sessionId",
    "song",
    "status",
    "ts",
    "userAgent",
    "userId",
]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    root = tmp_path_factory.mktemp("landing")
    summary = generate(root, SPEC)
    return root, summary


@pytest.fixture(scope="module")
def songs(landed: tuple[Path, GenerateSummary]) -> list[dict]:
    root, _ = landed
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((root / "song_data").rglob("*.json"))]


@pytest.fixture(scope="module")
def events(landed: tuple[Path, GenerateSummary]) -> list[dict]:
    root, _ = landed
    out: list[dict] = []
    for p in sorted((root / "log_data").rglob("*.json")):
        out.extend(json.loads(line) for line in p.read_text(encoding="utf-8").splitlines())
    return out


# ---------------------------------------------------------------- layout


def test_layout_matches_real_data(landed: tuple[Path, GenerateSummary]) -> None:
    root, _ = landed
    rel = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    song_paths = [r for r in rel if r.startswith("song_data/")]
    log_paths = [r for r in rel if r.startswith("log_data/")]
    assert len(song_paths) + len(log_paths) == len(rel)
    assert len(song_paths) == SPEC.songs
    assert len(log_paths) == SPEC.days
    for r in song_paths:
        assert SONG_RE.fullmatch(r), r
        track = r.rsplit("/", 1)[1][:-5]
        c3, c4, c5 = r.split("/")[1:4]
        assert (c3, c4, c5) == (track[2], track[3], track[4])
        assert c3 == "A"
        assert song_rel_path(track) == r
    for r in log_paths:
        assert LOG_RE.fullmatch(r), r
    expected_days = [SPEC.start + datetime.timedelta(days=d) for d in range(SPEC.days)]
    assert sorted(log_paths) == [log_rel_path(d) for d in expected_days]
    assert log_rel_path(datetime.date(2018, 11, 2)) == "log_data/2018/11/2018-11-02-events.json"


def test_song_files_are_single_objects_with_exact_keys(landed: tuple[Path, GenerateSummary]) -> None:
    root, _ = landed
    assert list(SONG_KEYS) == EXPECTED_SONG_KEYS
    for p in (root / "song_data").rglob("*.json"):
        text = p.read_text(encoding="utf-8")
        assert not text.endswith("\n")
        obj = json.loads(text)
        assert isinstance(obj, dict)
        assert list(obj) == EXPECTED_SONG_KEYS
        assert text == json.dumps(obj)  # default separators, one object
        assert obj["num_songs"] == 1
        assert re.fullmatch(r"SO[A-Z0-9]{16}", obj["song_id"])
        assert re.fullmatch(r"AR[A-Z0-9]{16}", obj["artist_id"])
        assert isinstance(obj["duration"], float) and 60 <= obj["duration"] <= 600
        assert round(obj["duration"], 5) == obj["duration"]
        assert isinstance(obj["year"], int) and (obj["year"] == 0 or 1960 <= obj["year"] <= 2010)
        assert isinstance(obj["artist_location"], str)
        assert isinstance(obj["title"], str) and obj["title"]
        assert isinstance(obj["artist_name"], str) and obj["artist_name"]
        lat, lon = obj["artist_latitude"], obj["artist_longitude"]
        assert (lat is None) == (lon is None)
        assert lat is None or (isinstance(lat, float) and isinstance(lon, float))


def test_song_ids_unique(songs: list[dict]) -> None:
    assert len({s["song_id"] for s in songs}) == len(songs)
    n_artists = len({s["artist_id"] for s in songs})
    assert n_artists == SPEC.songs // 4


def test_log_lines_have_exact_keys_and_types(landed: tuple[Path, GenerateSummary]) -> None:
    root, _ = landed
    assert list(LOG_KEYS) == EXPECTED_LOG_KEYS
    for d in range(SPEC.days):
        day = SPEC.start + datetime.timedelta(days=d)
        raw = (root / log_rel_path(day)).read_bytes()
        assert raw.endswith(b"\n")
        day_start = int(
            datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp() * 1000
        )
        prev_ts = day_start
        lines = raw.decode("utf-8").split("\n")[:-1]
        assert len(lines) == SPEC.events_per_day
        for line in lines:
            assert "/" not in line.replace("\\/", "")  # slashes escaped like the real files
            e = json.loads(line)
            assert list(e) == EXPECTED_LOG_KEYS
            for key in ("sessionId", "itemInSession", "status", "ts"):
                assert type(e[key]) is int, (key, e)
            assert isinstance(e["userId"], str)
            assert e["auth"] in ("Logged In", "Logged Out")
            assert e["level"] in ("free", "paid")
            assert e["method"] in ("GET", "PUT")
            assert day_start <= e["ts"] < day_start + 86_400_000
            assert e["ts"] >= prev_ts
            prev_ts = e["ts"]
            if e["page"] == "NextSong":
                assert isinstance(e["length"], float)
                assert isinstance(e["song"], str) and isinstance(e["artist"], str)
            else:
                assert e["length"] is None and e["song"] is None and e["artist"] is None
            if e["auth"] == "Logged Out":
                assert e["userId"] == ""
                for key in ("firstName", "lastName", "gender", "location", "userAgent", "registration"):
                    assert e[key] is None
            else:
                assert e["userId"].isdigit()
                assert isinstance(e["registration"], float)
                assert isinstance(e["firstName"], str) and e["gender"] in ("F", "M")


def test_sessions_are_consistent(events: list[dict]) -> None:
    by_session: dict[int, list[dict]] = defaultdict(list)
    for e in events:
        by_session[e["sessionId"]].append(e)
    for sid, rows in by_session.items():
        assert [r["itemInSession"] for r in rows] == list(range(len(rows))), sid
        assert len({r["userId"] for r in rows if r["userId"]}) <= 1, sid


def test_levels_follow_upgrade_history(events: list[dict]) -> None:
    by_user: dict[str, list[dict]] = defaultdict(list)
    for e in events:
        if e["userId"]:
            by_user[e["userId"]].append(e)
    both = 0
    for rows in by_user.values():
        both += {r["level"] for r in rows} == {"free", "paid"}
        for a, b in itertools.pairwise(rows):
            if a["level"] != b["level"]:
                expected = "Submit Upgrade" if b["level"] == "paid" else "Submit Downgrade"
                assert a["page"] == expected, (a, b)
    assert both >= 1
    pages = {e["page"] for e in events}
    assert {"Submit Upgrade", "Submit Downgrade"} <= pages


# ---------------------------------------------------------------- quirks


def test_song_quirks_present(songs: list[dict]) -> None:
    assert any(s["year"] == 0 for s in songs)
    assert any(s["year"] != 0 for s in songs)
    assert any(s["artist_location"] == "" for s in songs)
    assert any(s["artist_latitude"] is None for s in songs)
    assert any(s["artist_latitude"] is not None for s in songs)
    assert any(not s["title"].isascii() for s in songs)
    artists_by_title: dict[str, set[str]] = defaultdict(set)
    for s in songs:
        artists_by_title[s["title"]].add(s["artist_id"])
    assert any(len(a) > 1 for a in artists_by_title.values())
    spellings: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for s in songs:
        spellings[s["artist_id"]].add((s["artist_name"], s["artist_location"]))
    assert any(len(v) > 1 for v in spellings.values())


def test_log_quirks_present(events: list[dict]) -> None:
    n = len(events)
    logged_out = [e for e in events if e["auth"] == "Logged Out"]
    assert logged_out and all(e["userId"] == "" for e in logged_out)
    assert 0.01 < len(logged_out) / n < 0.08
    assert {e["page"] for e in logged_out} <= {"Home", "Login", "About", "Help"}
    non_next = [e for e in events if e["page"] != "NextSong"]
    assert 0.08 < len(non_next) / n < 0.25
    pages = {e["page"] for e in events}
    assert {"Home", "Logout", "Login", "Thumbs Up", "Roll Advert", "Add to Playlist"} <= pages
    agents = [e["userAgent"] for e in events if e["userAgent"] is not None]
    quoted = sum(a.startswith('"') and a.endswith('"') for a in agents)
    assert 0 < quoted < len(agents)
    plays = [e for e in events if e["page"] == "NextSong"]
    assert any(e["song"] != e["song"].strip() for e in plays)


def test_some_plays_match_songs_and_some_do_not(songs: list[dict], events: list[dict]) -> None:
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in songs:
        durations[(s["title"], s["artist_name"])].append(s["duration"])
    plays = [e for e in events if e["page"] == "NextSong"]
    matched = [
        e
        for e in plays
        if any(abs(e["length"] - d) <= 0.01 for d in durations.get((e["song"], e["artist"]), ()))
    ]
    assert 0.25 < len(matched) / len(plays) < 0.45
    titles = {s["title"] for s in songs}
    matched_ids = {id(e) for e in matched}
    unmatched = [e for e in plays if id(e) not in matched_ids]
    assert any(e["song"] in titles for e in unmatched)  # real title, wrong artist or length
    assert any(e["song"] not in titles for e in unmatched)  # made-up songs


def test_summary_counts_match_files(landed: tuple[Path, GenerateSummary], events: list[dict]) -> None:
    root, summary = landed
    assert summary.song_files == len(list((root / "song_data").rglob("*.json")))
    assert summary.log_files == len(list((root / "log_data").rglob("*.json")))
    assert summary.events == len(events) == SPEC.days * SPEC.events_per_day
    assert summary.next_song_events == sum(e["page"] == "NextSong" for e in events)


# ---------------------------------------------------------------- determinism


def test_same_spec_is_byte_identical(tmp_path: Path) -> None:
    spec = GenerateSpec(songs=30, users=8, days=2, events_per_day=300, seed=3)
    generate(tmp_path / "a", spec)
    generate(tmp_path / "b", spec)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a and a == b


def test_more_days_keep_earlier_days_and_songs(tmp_path: Path) -> None:
    short = GenerateSpec(songs=30, users=8, days=2, events_per_day=300, seed=3)
    long = dataclasses.replace(short, days=5, events_per_day=300)
    generate(tmp_path / "short", short)
    generate(tmp_path / "long", long)
    a, b = _files(tmp_path / "short"), _files(tmp_path / "long")
    assert len(b) == len(a) + 3
    for rel, data in a.items():
        assert b[rel] == data, rel


def test_songs_do_not_depend_on_log_settings(tmp_path: Path) -> None:
    generate(tmp_path / "a", GenerateSpec(songs=20, users=5, days=1, events_per_day=50, seed=11))
    generate(tmp_path / "b", GenerateSpec(songs=20, users=9, days=3, events_per_day=400, seed=11))
    songs_a = {k: v for k, v in _files(tmp_path / "a").items() if k.startswith("song_data/")}
    songs_b = {k: v for k, v in _files(tmp_path / "b").items() if k.startswith("song_data/")}
    assert songs_a and songs_a == songs_b


def test_different_seed_differs(tmp_path: Path) -> None:
    generate(tmp_path / "a", GenerateSpec(songs=10, users=3, days=1, events_per_day=50, seed=1))
    generate(tmp_path / "b", GenerateSpec(songs=10, users=3, days=1, events_per_day=50, seed=2))
    assert _files(tmp_path / "a") != _files(tmp_path / "b")


# ---------------------------------------------------------------- API


def test_custom_writer_and_progress(tmp_path: Path) -> None:
    spec = GenerateSpec(songs=12, users=4, days=2, events_per_day=100, seed=5)
    written: dict[str, bytes] = {}
    calls: list[tuple[str, int, int]] = []
    summary = generate(
        tmp_path / "unused", spec, progress=lambda *a: calls.append(a), writer=written.__setitem__
    )
    assert not (tmp_path / "unused").exists()
    assert len(written) == summary.song_files + summary.log_files
    generate(tmp_path / "disk", spec)
    assert written == _files(tmp_path / "disk")
    assert ("songs", 12, 12) in calls
    assert ("logs", 2, 2) in calls
    assert all(stage in ("songs", "logs") and 0 <= done <= total for stage, done, total in calls)


def test_tiny_spec_works(tmp_path: Path) -> None:
    summary = generate(tmp_path, GenerateSpec(songs=1, users=1, days=1, events_per_day=1, seed=0))
    assert summary == GenerateSummary(
        song_files=1, log_files=1, events=1, next_song_events=summary.next_song_events
    )
    assert summary.next_song_events in (0, 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("songs", 0),
        ("songs", -5),
        ("users", 0),
        ("days", 0),
        ("events_per_day", 0),
        ("events_per_day", 1.5),
        ("songs", True),
        ("seed", "42"),
        ("start", "2018-11-01"),
        ("start", datetime.datetime(2018, 11, 1)),
        ("start", datetime.date(1960, 1, 1)),
    ],
)
def test_bad_spec_raises_value_error(tmp_path: Path, field: str, value: object) -> None:
    spec = dataclasses.replace(GenerateSpec(), **{field: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=field):
        generate(tmp_path / "out", spec)
    assert not (tmp_path / "out").exists()


def test_date_overflow_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="date range"):
        generate(tmp_path, GenerateSpec(start=datetime.date(9999, 12, 30), days=5))
