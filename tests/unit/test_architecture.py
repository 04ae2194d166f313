"""The package's imports follow docs/architecture.md ("Who may import whom"), and no import runs in a circle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "lakehouse"


def rules() -> dict[str, tuple[list[str], set[str]]]:
    """part -> (its modules and folders under lakehouse/, the parts it may import), from the doc's table."""
    text = (ROOT / "docs" / "architecture.md").read_text().split("## Who may import whom", 1)[1].split("\n## ", 1)[0]
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`"):
            names = [re.findall(r"`([^`]+)`", c) for c in cells]
            found[names[0][0]] = (names[1], set(names[2]))
    return found


def module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The lakehouse modules a file imports, anywhere in it (`from a.b import c`: a.b.c when that is a module)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module for a in node.names}
    return {m for m in out if m.split(".")[0] == "lakehouse"} - {module(path)}


def graph() -> tuple[dict[str, set[str]], dict[str, str]]:
    """Every module's imports, and the part each module belongs to (a module in none: a test failure)."""
    files = {module(p): p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py"}
    members = {part: found for part, (found, _) in rules().items()}
    part_of = {}
    for name, path in files.items():
        where = path.relative_to(PACKAGE).as_posix()
        parts = [part for part, found in members.items() if any(where == m or (m.endswith("/") and where.startswith(m)) for m in found)]
        assert len(parts) == 1, f"lakehouse/{where} is in {parts or 'no part'} of docs/architecture.md's table"
        part_of[name] = parts[0]
    part_of["lakehouse"] = "core"
    return {name: imports(path, set(files)) for name, path in files.items()}, part_of


def test_each_part_imports_only_what_the_architecture_allows() -> None:
    allowed = rules()
    edges, part_of = graph()
    wrong = [f"{a} ({part_of[a]}) imports {b} ({part_of[b]})" for a, targets in sorted(edges.items()) for b in sorted(targets)
             if part_of[b] != part_of[a] and part_of[b] not in allowed[part_of[a]][1]]
    assert not wrong, "imports docs/architecture.md does not allow:\n" + "\n".join(wrong)


def test_no_import_runs_in_a_circle() -> None:
    edges, _ = graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join([*path[path.index(name):], name]))
        if name not in done:
            for target in sorted(edges.get(name, ())):
                visit(target, [*path, name])
            done.add(name)

    for name in sorted(edges):
        visit(name, [])
