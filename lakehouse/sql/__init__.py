"""The analytics team's questions: one query over gold per `*.sql` file in this folder, titled by its first
`--` comment; answered by `lakehouse report` and drawn by `lakehouse dashboard`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SQL_DIR = Path(__file__).parent


@dataclass(frozen=True)
class Question:
    key: str  # the file's name without .sql, e.g. 03_plays_per_hour
    title: str
    query: str


def questions() -> list[Question]:
    """Every question, in the order of its file name."""
    found = []
    for path in sorted(SQL_DIR.glob("*.sql")):
        query = path.read_text()
        title = next((ln[2:].strip() for ln in query.splitlines() if ln.startswith("--")), path.stem)
        found.append(Question(path.stem, title, query))
    return found
