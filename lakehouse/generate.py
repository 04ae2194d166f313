"""Deterministic synthetic Sparkify landing-zone generator.

Writes a ``song_data/`` tree (one JSON object per song file) and a ``log_data/``
tree (one newline-delimited JSON file per day) laid out exactly like the real
Sparkify data, including its quirks (year 0, empty locations, logged-out rows,
quoted user agents, free -> paid upgrades, plays that match no song, ...).

Determinism guarantees (for a fixed ``seed``):

* the same spec produces byte-identical files;
* song files depend only on ``seed`` and ``songs``;
* day ``d``'s log file depends only on ``seed``, ``songs``, ``users``,
  ``events_per_day``, ``start`` and ``d`` -- never on ``days`` -- so generating
  N + k days reproduces the first N files exactly (new days can be "landed").

Only the standard library is used. All file output goes through one
``writer(rel_path, data)`` callable so another backend (e.g. S3) can be plugged
in; the default writes under a local directory.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import random
import shutil
import string
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from itertools import accumulate
from operator import itemgetter
from pathlib import Path
from typing import Any

__all__ = [
    "LOG_KEYS",
    "SONG_KEYS",
    "GenerateSpec",
    "GenerateSummary",
    "Progress",
    "Writer",
    "generate",
    "local_writer",
    "log_rel_path",
    "song_rel_path",
    "validate_spec",
]

Writer = Callable[[str, bytes], None]
Progress = Callable[[str, int, int], None]

SONG_KEYS: tuple[str, ...] = (
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
)

LOG_KEYS: tuple[str, ...] = (
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
)

_DAY_MS = 86_400_000
_EPOCH = datetime.date(1970, 1, 1)
_ALNUM = string.ascii_uppercase + string.digits
_LETTERS = string.ascii_uppercase

# Tuning knobs (fractions are approximate targets).
_MATCH_RATE = 0.35  # NextSong rows that match a generated song exactly
_WHITESPACE_RATE = 0.004  # NextSong rows with padded "song"
_NEXT_SONG_RATE = 0.885  # NextSong share of logged-in "body" events
_PREFIX_RATE = 0.25  # sessions starting logged out (Home/About/Help, Login)
_LOGOUT_RATE = 0.25  # sessions ending with Logout
_MEAN_SESSION = 18.0  # mean events per session
_SONG_PROGRESS_EVERY = 1000


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateSpec:
    """Size and seed of a synthetic landing zone."""

    songs: int = 200  # number of song files
    users: int = 50
    days: int = 7
    events_per_day: int = 2000
    start: datetime.date = datetime.date(2018, 11, 1)
    seed: int = 42


@dataclass(frozen=True)
class GenerateSummary:
    """What :func:`generate` wrote."""

    song_files: int
    log_files: int
    events: int  # log lines written
    next_song_events: int


def validate_spec(spec: GenerateSpec) -> None:
    """Raise ``ValueError`` (one-line message) if ``spec`` is unusable."""
    if not isinstance(spec, GenerateSpec):
        raise ValueError(f"spec must be a GenerateSpec, got {type(spec).__name__}")
    for name in ("songs", "users", "days", "events_per_day"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(spec.seed, bool) or not isinstance(spec.seed, int):
        raise ValueError(f"seed must be an integer, got {spec.seed!r}")
    if isinstance(spec.start, datetime.datetime) or not isinstance(spec.start, datetime.date):
        raise ValueError(f"start must be a datetime.date, got {spec.start!r}")
    if spec.start < _EPOCH:
        raise ValueError(f"start must be on or after 1970-01-01, got {spec.start}")
    try:
        spec.start + datetime.timedelta(days=spec.days - 1)
    except OverflowError:
        raise ValueError(f"start + days is out of the date range: {spec.start} + {spec.days} days") from None


def song_rel_path(track_id: str) -> str:
    """``song_data/<c3>/<c4>/<c5>/<track_id>.json`` for a track id."""
    return f"song_data/{track_id[2]}/{track_id[3]}/{track_id[4]}/{track_id}.json"


def log_rel_path(day: datetime.date) -> str:
    """``log_data/YYYY/MM/YYYY-MM-DD-events.json`` for a day."""
    return f"log_data/{day:%Y}/{day:%m}/{day:%Y-%m-%d}-events.json"


def local_writer(root: str | os.PathLike) -> Writer:
    """Return a writer storing ``rel_path`` under the local directory ``root``."""
    base = Path(root)
    made: set[Path] = set()

    def write_file(rel_path: str, data: bytes) -> None:
        path = base / rel_path
        parent = path.parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        with open(path, "wb") as fh:
            fh.write(data)

    return write_file


def land(files: list[Path], generated: Path, landing: Path) -> None:
    """Copy generated files into a landing zone at the same relative paths, keeping their modification times."""
    for f in files:
        target = landing / f.relative_to(generated)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)


def generate(
    out: str | os.PathLike,
    spec: GenerateSpec,
    progress: Progress | None = None,
    writer: Writer | None = None,
) -> GenerateSummary:
    """Generate the landing zone described by ``spec``.

    ``out`` is a local directory (created if needed) used by the default
    writer; when ``writer`` is given, ``out`` is not touched and every file is
    handed to ``writer(rel_path, data)`` instead. ``progress(stage, done,
    total)`` is called with stage ``"songs"`` (every 1000 files and at the end)
    and ``"logs"`` (after every day file).
    """
    validate_spec(spec)
    if writer is None:
        Path(out).mkdir(parents=True, exist_ok=True)
        writer = local_writer(out)

    catalogue = _build_catalogue(spec.seed, spec.songs)
    total = len(catalogue.songs)
    if progress:
        progress("songs", 0, total)
    for i, song in enumerate(catalogue.songs, 1):
        writer(song_rel_path(song.track_id), song.to_json().encode("utf-8"))
        if progress and (i % _SONG_PROGRESS_EVERY == 0 or i == total):
            progress("songs", i, total)

    users = [_build_user(spec.seed, i, spec.start) for i in range(spec.users)]
    plays = _PlayPool(catalogue, spec.seed)
    events = next_songs = 0
    if progress:
        progress("logs", 0, spec.days)
    for d in range(spec.days):
        day = spec.start + datetime.timedelta(days=d)
        data, n_events, n_next = _generate_day(spec, d, day, users, plays)
        writer(log_rel_path(day), data)
        events += n_events
        next_songs += n_next
        if progress:
            progress("logs", d + 1, spec.days)

    return GenerateSummary(
        song_files=total,
        log_files=spec.days,
        events=events,
        next_song_events=next_songs,
    )


# --------------------------------------------------------------------------
# Word pools: package data (generate_vocabulary.json), read once at import
# --------------------------------------------------------------------------

VOCABULARY_FILE = "generate_vocabulary.json"


def _vocabulary() -> dict[str, Any]:
    """The word lists names, titles, places and user agents are drawn from (their order is part of the output)."""
    return json.loads(resources.files("lakehouse").joinpath(VOCABULARY_FILE).read_text(encoding="utf-8"))


_VOCABULARY = _vocabulary()
_TITLE_WORDS: tuple[str, ...] = tuple(_VOCABULARY["title_words"])
_TITLE_SMALL: tuple[str, ...] = tuple(_VOCABULARY["title_small_words"])
_TITLE_SUFFIX: tuple[str, ...] = tuple(_VOCABULARY["title_suffixes"])
_NON_ASCII_WORDS: tuple[str, ...] = tuple(_VOCABULARY["non_ascii_words"])
_ARTIST_FIRST: tuple[str, ...] = tuple(_VOCABULARY["artist_first_names"])
_ARTIST_LAST: tuple[str, ...] = tuple(_VOCABULARY["artist_last_names"])
_ARTIST_NOUNS: tuple[str, ...] = tuple(_VOCABULARY["artist_nouns"])
_ARTIST_ADJ: tuple[str, ...] = tuple(_VOCABULARY["artist_adjectives"])
_SYLLABLES: tuple[str, ...] = tuple(_VOCABULARY["syllables"])
_ARTIST_LOCATIONS: tuple[str, ...] = tuple(_VOCABULARY["artist_locations"])
_USER_FIRST_F: tuple[str, ...] = tuple(_VOCABULARY["user_first_names_f"])
_USER_FIRST_M: tuple[str, ...] = tuple(_VOCABULARY["user_first_names_m"])
_USER_LAST: tuple[str, ...] = tuple(_VOCABULARY["user_last_names"])
_USER_LOCATIONS: tuple[str, ...] = tuple(_VOCABULARY["user_locations"])
# (user agent, weight). As in the real data, agents containing a comma are
# wrapped in literal double quotes; weights give ~70% quoted users.
_USER_AGENTS: tuple[tuple[str, int], ...] = tuple((agent, int(weight)) for agent, weight in _VOCABULARY["user_agents"])


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _rand_id(rng: random.Random, prefix: str, taken: set[str]) -> str:
    """A unique ``prefix`` + 16 uppercase alphanumerics id."""
    while True:
        value = prefix + "".join(rng.choices(_ALNUM, k=16))
        if value not in taken:
            taken.add(value)
            return value


def _enc(value: object) -> str:
    """JSON-encode one value the way the real log files do (``/`` escaped)."""
    return json.dumps(value).replace("/", "\\/")


def _skewed(rng: random.Random, n: int) -> int:
    """Index in ``range(n)`` biased towards small values (popular items)."""
    return int(n * rng.random() ** 2)


# --------------------------------------------------------------------------
# Song catalogue
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Song:
    track_id: str
    song_id: str
    artist_id: str
    artist_name: str
    artist_location: str
    artist_latitude: float | None
    artist_longitude: float | None
    title: str
    duration: float
    year: int

    def to_json(self) -> str:
        """Serialise exactly like a real song file (no trailing newline)."""
        return json.dumps(
            {
                "num_songs": 1,
                "artist_id": self.artist_id,
                "artist_latitude": self.artist_latitude,
                "artist_longitude": self.artist_longitude,
                "artist_location": self.artist_location,
                "artist_name": self.artist_name,
                "song_id": self.song_id,
                "title": self.title,
                "duration": self.duration,
                "year": self.year,
            }
        )


@dataclass(frozen=True)
class _Catalogue:
    songs: list[_Song]
    names: frozenset[str]  # every artist_name spelling used in a song file


def _artist_name(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.35:
        return f"{rng.choice(_ARTIST_FIRST)} {rng.choice(_ARTIST_LAST)}"
    if r < 0.58:
        return f"The {rng.choice(_ARTIST_ADJ)} {rng.choice(_ARTIST_NOUNS)}"
    if r < 0.72:
        return f"{rng.choice(_ARTIST_NOUNS)} & {rng.choice(_ARTIST_NOUNS)}"
    if r < 0.84:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
        return word.capitalize()
    if r < 0.93:
        return f"{rng.choice(_ARTIST_FIRST)} {rng.choice(_ARTIST_LAST)} & The {rng.choice(_ARTIST_NOUNS)}"
    if r < 0.98:
        a = rng.choice(_SYLLABLES).capitalize()
        return f"{a}'{rng.choice(_SYLLABLES)}{rng.choice(_SYLLABLES)}"
    return f"{rng.choice(_ARTIST_ADJ)}/{rng.choice(_ARTIST_NOUNS)}"


def _unique_name(rng: random.Random, taken: set[str]) -> str:
    name = _artist_name(rng)
    tries = 0
    while name in taken:
        tries += 1
        name = _artist_name(rng) if tries < 20 else f"{_artist_name(rng)} {rng.randint(2, 99_999)}"
    taken.add(name)
    return name


def _title(rng: random.Random, force_non_ascii: bool = False) -> str:
    n = rng.choice((1, 2, 2, 2, 3, 3, 3, 4, 5))
    words = [rng.choice(_TITLE_WORDS) for _ in range(n)]
    if n >= 3 and rng.random() < 0.4:
        words[1] = rng.choice(_TITLE_SMALL)
    if force_non_ascii or rng.random() < 0.04:
        words[rng.randrange(n)] = rng.choice(_NON_ASCII_WORDS)
    title = " ".join(words)
    if rng.random() < 0.06:
        title += rng.choice(_TITLE_SUFFIX)
    return title


def _duration(rng: random.Random) -> float:
    return round(rng.uniform(60.0, 600.0), 5)


def _name_variant(rng: random.Random, name: str, taken: set[str]) -> str:
    """A different spelling of an artist name (not colliding with ``taken``)."""
    options = []
    if name.startswith("The "):
        options.append(name[4:])
    else:
        options.append("The " + name)
    if " & " in name:
        options.append(name.replace(" & ", " and "))
    options.append(f"{name} featuring {rng.choice(_ARTIST_FIRST)} {rng.choice(_ARTIST_LAST)}")
    options.append(name.upper() if name.upper() != name else name.lower())
    rng.shuffle(options)
    for cand in options:
        if cand != name and cand not in taken:
            taken.add(cand)
            return cand
    return _unique_name(rng, taken)


def _location_variant(rng: random.Random, loc: str) -> str:
    if loc and "," in loc and rng.random() < 0.5:
        return loc.split(",")[0]
    while True:
        cand = rng.choice(_ARTIST_LOCATIONS)
        if cand != loc:
            return cand


def _build_catalogue(seed: int, n_songs: int) -> _Catalogue:
    """Songs and artists; depends only on ``(seed, n_songs)``."""
    rng = random.Random(f"{seed}:songs:{n_songs}")
    n_artists = max(1, n_songs // 4)
    ids: set[str] = set()
    names: set[str] = set()

    artists = []
    for _ in range(n_artists):
        loc = rng.choice(_ARTIST_LOCATIONS) if rng.random() >= 0.30 else ""
        has_geo = rng.random() < (0.10 if loc == "" else 0.67)
        lat = round(rng.uniform(-45.0, 65.0), 5) if has_geo else None
        lon = round(rng.uniform(-125.0, 150.0), 5) if has_geo else None
        artists.append((_rand_id(rng, "AR", ids), _unique_name(rng, names), loc, lat, lon))

    # Every artist gets at least one song; the rest are spread at random.
    owner = list(range(n_artists)) + [rng.randrange(n_artists) for _ in range(n_songs - n_artists)]
    rng.shuffle(owner)

    # Directory fan-out like the real data: a k x k block of A..Z letters.
    k = 1
    while k < 26 and k * k < max(1, n_songs // 20):
        k += 1
    letters = _LETTERS[:k]

    titles: list[str] = []
    used_title_artist: set[tuple[str, int]] = set()
    has_dup = False
    for i in range(n_songs):
        a = owner[i]
        title = None
        want_dup = i > 0 and n_artists > 1 and (rng.random() < 0.05 or (i == n_songs - 1 and not has_dup))
        if want_dup:
            for _ in range(10):
                j = rng.randrange(i)
                if owner[j] != a and (titles[j], a) not in used_title_artist:
                    title, has_dup = titles[j], True
                    break
        while title is None or (title, a) in used_title_artist:
            title = _title(rng, force_non_ascii=(i == 1))
        used_title_artist.add((title, a))
        titles.append(title)

    songs = []
    for i in range(n_songs):
        artist_id, name, loc, lat, lon = artists[owner[i]]
        track = "TRA" + rng.choice(letters) + rng.choice(letters) + "".join(rng.choices(_ALNUM, k=13))
        while track in ids:
            track = "TRA" + rng.choice(letters) + rng.choice(letters) + "".join(rng.choices(_ALNUM, k=13))
        ids.add(track)
        year = 0 if rng.random() < 0.40 else rng.randint(1960, 2010)
        songs.append(
            _Song(
                track_id=track,
                song_id=_rand_id(rng, "SO", ids),
                artist_id=artist_id,
                artist_name=name,
                artist_location=loc,
                artist_latitude=lat,
                artist_longitude=lon,
                title=titles[i],
                duration=_duration(rng),
                year=year,
            )
        )

    # ~5% of multi-song artists: one song file disagrees on name or location.
    by_artist: dict[int, list[int]] = {}
    for i, a in enumerate(owner):
        by_artist.setdefault(a, []).append(i)
    multi = [a for a in range(n_artists) if len(by_artist.get(a, ())) >= 2]
    if multi:
        for a in rng.sample(multi, min(len(multi), max(1, round(0.05 * n_artists)))):
            i = rng.choice(by_artist[a][1:])
            s = songs[i]
            if rng.random() < 0.5:
                variant = _name_variant(rng, s.artist_name, names)
                songs[i] = _replace(s, artist_name=variant)
            else:
                songs[i] = _replace(s, artist_location=_location_variant(rng, s.artist_location))

    return _Catalogue(songs=songs, names=frozenset(names))


def _replace(song: _Song, **changes: object) -> _Song:
    return dataclasses.replace(song, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# Plays referenced by NextSong events
# --------------------------------------------------------------------------

# A play is (artist_json, song_json, length_json, length_ms).
_Play = tuple[str, str, str, int]


class _PlayPool:
    """Pre-encoded NextSong payloads: matching songs and non-existent ones."""

    def __init__(self, catalogue: _Catalogue, seed: int) -> None:
        songs = catalogue.songs
        self.titles = [s.title for s in songs]
        self.durations = [s.duration for s in songs]
        self.artist_names = [s.artist_name for s in songs]
        self.title_enc = [_enc(t) for t in self.titles]
        self.matching: list[_Play] = [
            (_enc(s.artist_name), self.title_enc[i], repr(s.duration), int(s.duration * 1000))
            for i, s in enumerate(songs)
        ]
        self.artist_enc = [p[0] for p in self.matching]
        # Phantom artists never collide with any spelling used in song files,
        # so a phantom artist never matches.
        rng = random.Random(f"{seed}:phantom:{len(songs)}")
        taken = set(catalogue.names)
        n_art = max(10, len(songs) // 4)
        self.phantom_artists = [_enc(_unique_name(rng, taken)) for _ in range(n_art)]
        self.phantom: list[_Play] = []
        for _ in range(max(20, len(songs))):
            d = _duration(rng)
            self.phantom.append((rng.choice(self.phantom_artists), _enc(_title(rng)), repr(d), int(d * 1000)))

    def pick(self, rng: random.Random) -> _Play:
        """One NextSong payload (~35% exact matches, the rest non-matching)."""
        r = rng.random()
        if r < _MATCH_RATE:
            i = _skewed(rng, len(self.matching))
            play = self.matching[i]
            if rng.random() < 0.2:  # tiny rounding drift, still a match
                d = round(self.durations[i] + rng.choice((-0.003, -0.002, -0.001, 0.001, 0.002, 0.003)), 5)
                play = (play[0], play[1], repr(d), int(d * 1000))
        elif r < 0.70:  # made-up title / artist pair
            play = self.phantom[_skewed(rng, len(self.phantom))]
        elif r < 0.85:  # real title, artist that has no such song
            i = _skewed(rng, len(self.matching))
            d = _duration(rng)
            play = (rng.choice(self.phantom_artists), self.title_enc[i], repr(d), int(d * 1000))
        else:  # real title + artist, length off by >= 1 s
            i = _skewed(rng, len(self.matching))
            base = self.durations[i]
            delta = rng.uniform(1.5, 40.0)
            d = round(base - delta if base - delta >= 30.0 else base + delta, 5)
            play = (self.artist_enc[i], self.title_enc[i], repr(d), int(d * 1000))
        if rng.random() < _WHITESPACE_RATE:
            title = json.loads(play[1])
            padded = rng.choice((" " + title, title + " ", "  " + title + " "))
            play = (play[0], _enc(padded), play[2], play[3])
        return play


# --------------------------------------------------------------------------
# Users
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _User:
    frag_a: str  # "auth":...,"firstName":...,"gender":...,
    frag_b: str  # "lastName":...,
    frag_c: str  # "location":...,
    frag_d: str  # "registration":...,
    frag_e: str  # "userAgent":...,"userId":...
    weight: float  # relative activity
    p_active: float  # chance of being active on a given day
    initial_level: str
    changes: tuple[tuple[int, str], ...]  # (day index, new level), sorted

    def level_at_start(self, d: int) -> str:
        level = self.initial_level
        for day, new in self.changes:
            if day < d:
                level = new
        return level

    def change_on(self, d: int) -> str | None:
        for day, new in self.changes:
            if day == d:
                return new
        return None


_LOGGED_OUT = (
    '"auth":"Logged Out","firstName":null,"gender":null,',
    '"lastName":null,',
    '"location":null,',
    '"registration":null,',
    '"userAgent":null,"userId":""',
)


def _build_user(seed: int, index: int, start: datetime.date) -> _User:
    """User ``index``; depends only on ``(seed, index, start)``, never on ``days``."""
    rng = random.Random(f"{seed}:user:{index}")
    gender = "F" if rng.random() < 0.5 else "M"
    first = rng.choice(_USER_FIRST_F if gender == "F" else _USER_FIRST_M)
    last = rng.choice(_USER_LAST)
    location = rng.choice(_USER_LOCATIONS)
    agents = [a for a, _ in _USER_AGENTS]
    if index == 0:  # guarantee both user-agent styles exist
        agent = agents[0]
    elif index == 1:
        agent = agents[-1]
    else:
        agent = rng.choices(agents, weights=[w for _, w in _USER_AGENTS])[0]
    if "," in agent:
        agent = f'"{agent}"'
    start_ms = (start - _EPOCH).days * _DAY_MS
    registration = float(start_ms - rng.randint(_DAY_MS, 120 * _DAY_MS))

    # Level history, independent of how many days are generated.
    if index == 0:  # guarantee a free -> paid user on day 0
        initial, changes = "free", [(0, "paid")]
    elif index == 1:  # guarantee a paid -> free user on day 0
        initial, changes = "paid", [(0, "free")]
    elif rng.random() < 0.7:
        initial, changes = "free", []
        if rng.random() < 0.45:
            up = rng.randint(0, 13)
            changes.append((up, "paid"))
            if rng.random() < 0.15:
                changes.append((up + rng.randint(1, 10), "free"))
    else:
        initial, changes = "paid", []
        if rng.random() < 0.15:
            changes.append((rng.randint(0, 13), "free"))

    user_id = str(index + 1)
    return _User(
        frag_a=f'"auth":"Logged In","firstName":{_enc(first)},"gender":"{gender}",',
        frag_b=f'"lastName":{_enc(last)},',
        frag_c=f'"location":{_enc(location)},',
        frag_d=f'"registration":{registration!r},',
        frag_e=f'"userAgent":{_enc(agent)},"userId":{_enc(user_id)}',
        weight=rng.lognormvariate(0.0, 0.8),
        p_active=rng.uniform(0.35, 0.9),
        initial_level=initial,
        changes=tuple(changes),
    )


# --------------------------------------------------------------------------
# Pages and sessions
# --------------------------------------------------------------------------

# code -> (method/page JSON fragment, status, logged in?)
_PAGE_DEFS = {
    "NextSong": ("PUT", 200),
    "Home": ("GET", 200),
    "Login": ("PUT", 307),
    "Logout": ("PUT", 307),
    "Settings": ("GET", 200),
    "Save Settings": ("PUT", 307),
    "Upgrade": ("GET", 200),
    "Downgrade": ("GET", 200),
    "Submit Upgrade": ("PUT", 307),
    "Submit Downgrade": ("PUT", 307),
    "About": ("GET", 200),
    "Help": ("GET", 200),
    "Error": ("GET", 404),
    "Add to Playlist": ("PUT", 200),
    "Thumbs Up": ("PUT", 307),
    "Thumbs Down": ("PUT", 307),
    "Roll Advert": ("GET", 200),
    "Add Friend": ("PUT", 307),
}
_PAGES: list[tuple[str, int, bool]] = []
_CODE: dict[tuple[str, bool], int] = {}
for _name, (_method, _status) in _PAGE_DEFS.items():
    for _logged_in in (True, False):
        _CODE[(_name, _logged_in)] = len(_PAGES)
        _PAGES.append((f'"method":"{_method}","page":"{_name}",', _status, _logged_in))

_NEXT = _CODE[("NextSong", True)]
_LO_BROWSE = [_CODE[("Home", False)]] * 3 + [_CODE[("About", False)], _CODE[("Help", False)]]
_LO_LOGIN = _CODE[("Login", False)]
_LO_HOME = _CODE[("Home", False)]
_LOGOUT = _CODE[("Logout", True)]

_OTHER_COMMON = (
    ("Home", 35),
    ("Thumbs Up", 14),
    ("Add to Playlist", 8),
    ("Add Friend", 5),
    ("Settings", 3),
    ("Save Settings", 1),
    ("Help", 3),
    ("About", 2),
    ("Thumbs Down", 4),
    ("Error", 1),
)
_OTHER_BY_LEVEL: dict[str, tuple[list[int], list[float]]] = {}
for _level, _extra in (("free", (("Roll Advert", 12), ("Upgrade", 3))), ("paid", (("Downgrade", 3),))):
    _pairs = _OTHER_COMMON + _extra
    _OTHER_BY_LEVEL[_level] = (
        [_CODE[(p, True)] for p, _ in _pairs],
        list(accumulate(float(w) for _, w in _pairs)),
    )

# A skeleton event: [page code, level, play or None, gap to next event in ms].
_Event = list


def _other_page(rng: random.Random, level: str) -> int:
    codes, cum = _OTHER_BY_LEVEL[level]
    return codes[bisect_right(cum, rng.random() * cum[-1])]


def _gap(rng: random.Random, play: _Play | None) -> int:
    if play is not None:
        return play[3] + rng.randint(0, 1500)
    return rng.randint(2_000, 60_000)


def _build_session(
    rng: random.Random, plays: _PlayPool, n: int, level: str, change: str | None
) -> tuple[list[_Event], str]:
    """Skeleton events of one session with ``n`` events; returns the final level."""
    head: list[int] = []
    tail: list[int] = []
    if n >= 4 and rng.random() < _PREFIX_RATE:
        head = [rng.choice(_LO_BROWSE) for _ in range(1 if rng.random() < 0.6 else 2)] + [_LO_LOGIN]
    if n - len(head) >= 3 and rng.random() < _LOGOUT_RATE:
        tail = [_LOGOUT] + ([_LO_HOME] if rng.random() < 0.6 else [])
    if change is not None and n - len(head) - len(tail) < 2:
        head, tail = [], []  # keep room for the Upgrade/Submit pair
    body_n = n - len(head) - len(tail)
    change_at = -1
    if change is not None and body_n >= 2:
        change_at = rng.randrange(body_n - 1)

    events: list[_Event] = []
    for code in head:
        events.append([code, level, None, rng.randint(1_000, 20_000)])
    j = 0
    while j < body_n:
        if j == change_at:
            page, submit = (
                ("Upgrade", "Submit Upgrade") if change == "paid" else ("Downgrade", "Submit Downgrade")
            )
            events.append([_CODE[(page, True)], level, None, rng.randint(2_000, 30_000)])
            events.append([_CODE[(submit, True)], level, None, rng.randint(1_000, 5_000)])
            level = change  # type: ignore[assignment]
            j += 2
            continue
        if rng.random() < _NEXT_SONG_RATE:
            play = plays.pick(rng)
            events.append([_NEXT, level, play, _gap(rng, play)])
        else:
            code = _other_page(rng, level)
            events.append([code, level, None, _gap(rng, None)])
        j += 1
    for code in tail:
        events.append([code, level, None, rng.randint(1_000, 20_000)])
    return events, level


def _session_length(rng: random.Random) -> int:
    return min(400, 1 + int(rng.expovariate(1.0 / _MEAN_SESSION)))


def _generate_day(
    spec: GenerateSpec, d: int, day: datetime.date, users: list[_User], plays: _PlayPool
) -> tuple[bytes, int, int]:
    """One day's log file; depends only on the spec (minus ``days``) and ``d``."""
    rng = random.Random(f"{spec.seed}:day:{d}:{spec.users}:{spec.songs}:{spec.events_per_day}")
    n_users = len(users)
    levels = [u.level_at_start(d) for u in users]
    changing = [i for i, u in enumerate(users) if u.change_on(d) is not None]
    active = sorted(set(i for i, u in enumerate(users) if rng.random() < u.p_active) | set(changing))
    if not active:
        active = [rng.randrange(n_users)]
    cum = list(accumulate(users[i].weight for i in active))

    # Build sessions per user, in the order they will happen for that user.
    per_user: dict[int, list[list[_Event]]] = {}
    remaining = spec.events_per_day
    for i in changing:  # the level change happens in the user's first session
        if remaining <= 0:
            break
        n = min(remaining, max(4, _session_length(rng)))
        events, levels[i] = _build_session(rng, plays, n, levels[i], users[i].change_on(d))
        per_user.setdefault(i, []).append(events)
        remaining -= n
    while remaining > 0:
        i = active[bisect_right(cum, rng.random() * cum[-1])]
        n = min(remaining, _session_length(rng))
        events, levels[i] = _build_session(rng, plays, n, levels[i], None)
        per_user.setdefault(i, []).append(events)
        remaining -= n

    # Lay each user's sessions out sequentially inside the day.
    day_ms = (day - _EPOCH).days * _DAY_MS
    placed: list[tuple[int, int, int, list[_Event]]] = []  # (start ts, order, user, events)
    order = 0
    for i in sorted(per_user):
        sessions = per_user[i]
        spans = [sum(e[3] for e in s[:-1]) for s in sessions]
        total = sum(spans)
        budget = _DAY_MS - 1 - len(sessions)
        scale = 1.0 if total <= budget else budget / total
        slack = max(0, budget - (int(total * scale) if scale < 1.0 else total))
        cuts = sorted(rng.random() for _ in sessions)
        t = 0
        prev_cut = 0.0
        for s, cut in zip(sessions, cuts, strict=True):
            t += int((cut - prev_cut) * slack)
            prev_cut = cut
            start = t
            for e in s:
                gap = e[3]
                e[3] = day_ms + t  # reuse the slot for the absolute ts
                t += int(gap * scale) if scale < 1.0 else gap
            t = e[3] - day_ms + 1  # next session starts after this one's last event
            placed.append((start, order, i, s))
            order += 1
    placed.sort(key=itemgetter(0, 1))

    # Render lines; session ids are unique across days and increase with time.
    lines: list[tuple[int, str]] = []
    append = lines.append
    next_songs = 0
    sid = d * spec.events_per_day
    pages = _PAGES
    for _, _, i, s in placed:
        sid += 1
        u = users[i]
        logged_in = (u.frag_a, u.frag_b, u.frag_c, u.frag_d, u.frag_e)
        for item, (code, level, play, ts) in enumerate(s):
            mp, status, is_in = pages[code]
            fa, fb, fc, fd, fe = logged_in if is_in else _LOGGED_OUT
            if play is None:
                artist = song = length = "null"
            else:
                artist, song, length = play[0], play[1], play[2]
                next_songs += 1
            append(
                (
                    ts,
                    f'{{"artist":{artist},{fa}"itemInSession":{item},{fb}"length":{length},'
                    f'"level":"{level}",{fc}{mp}{fd}"sessionId":{sid},"song":{song},'
                    f'"status":{status},"ts":{ts},{fe}}}\n',
                )
            )
    lines.sort(key=itemgetter(0))
    data = "".join(line for _, line in lines).encode("utf-8")
    return data, len(lines), next_songs
