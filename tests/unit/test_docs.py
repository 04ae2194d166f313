"""README.md and docs/*.md: every relative link resolves (to a file, and to a heading when it names one), and
every `make` and `lakehouse` command the README shows exists (the CLI's parser reads it; Spark never starts)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from lakehouse.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"^[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert not broken, f"{page.name}: links that lead nowhere: {broken}"


def readme_commands() -> list[str]:
    """The commands of the README's ```bash blocks (comments dropped) and its inline `lakehouse ...` spans."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S)
    lines = [ln.strip() for block in blocks for ln in block.splitlines()]
    spans = re.findall(r"`(lakehouse [^`]+)`", FENCE.sub("", text))
    return [c for c in lines + spans if c.startswith(("make ", "lakehouse "))]


def test_the_readme_shows_commands_that_exist() -> None:
    commands = readme_commands()
    assert any(c.startswith("make demo") for c in commands) and sum(c.startswith("lakehouse ") for c in commands) >= 10
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    parser = build_parser()
    for command in commands:
        words = shlex.split(command, comments=True)
        if words[0] == "make":
            assert words[1] in targets, f"README: `{command}`: no such target in the Makefile"
            continue
        try:
            parser.parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"README: `{command}` is not a command the CLI accepts")
