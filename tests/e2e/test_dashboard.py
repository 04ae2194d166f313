"""`lakehouse dashboard` as a person sees it: the site of a real warehouse, rendered by headless Chromium.

One small warehouse (2 days x 300 events) is built once for the module: a first run that loads day 1
(plus a log line holding a <script> tag, which bronze quarantines), then a run that fails on a
data-quality rule set to `fail`. The rendered DOM must show what the warehouse holds."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from lakehouse import tables as T
from lakehouse.dashboard import site
from lakehouse.errors import LakehouseError
from lakehouse.generate import GenerateSpec, generate
from lakehouse.sql import SQL_DIR

from .helpers import apt_install, land, run

pytestmark = pytest.mark.e2e
SCRIPT_LINE = '<script>document.title="pwned";document.body.innerHTML="pwned"</script> {"not": json'
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs, self.parts, self.children = tag, attrs, [], []  # type: ignore[var-annotated]

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def find(self, **attrs: str) -> list[Element]:
        """Descendants whose attributes contain `attrs` (class_ matches one class name)."""
        found = []
        for child in self.children:
            ok = all((v in child.attrs.get("class", "").split()) if k == "class_" else child.attrs.get(k.replace("_", "-")) == v
                     for k, v in attrs.items())
            if ok:
                found.append(child)
            found.extend(child.find(**attrs))
        return found


class Dom(HTMLParser):
    """The DOM Chromium serialized, as a tree of elements with their text (entities decoded)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self.stack = [self.root]
        self.tags: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = Element(tag, {k: v or "" for k, v in attrs})
        self.tags.append(tag)
        self.stack[-1].children.append(el)
        if tag not in VOID:
            self.stack.append(el)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        for el in self.stack:
            el.parts.append(data)


def chromium() -> str:
    """Debian's chromium; installed once (apt-get) when missing and we may, else the test skips."""
    exe = shutil.which("chromium")
    if exe is None:
        problem = apt_install("chromium")
        exe = shutil.which("chromium")
        if exe is None:
            pytest.skip(f"the Debian package chromium is not installed and could not be installed ({problem or 'no chromium binary'})")
    return exe


def browse(index: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = chromium()
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={index.parent.parent / 'chromium-profile'}",
           *args, index.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def number(text: str) -> int:
    return int(text.strip().split()[0].replace(",", ""))


@pytest.fixture(scope="module")
def built(spark: Any, base_settings: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dashboard")
    generated, landing = root / "generated", root / "landing"
    generate(generated, GenerateSpec(songs=60, users=10, days=2, events_per_day=300, seed=11))
    logs = sorted((generated / "log_data").rglob("*.json"))
    land(sorted((generated / "song_data").rglob("*.json")) + logs[:1], generated, landing)
    with (landing / logs[0].relative_to(generated)).open("a") as fh:
        fh.write(SCRIPT_LINE + "\n")
    settings = dataclasses.replace(base_settings, source=f"file:{landing}", warehouse=f"file:{root / 'warehouse'}")
    run(spark, settings)

    land(logs[1:], generated, landing)
    rules = root / "fail.toml"
    rules.write_text('[events.stop_here]\ncheck = "false"\naction = "fail"\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LAKEHOUSE_QUALITY_FILE", str(rules))
        with pytest.raises(LakehouseError, match="stop_here"):
            run(spark, settings)

    # A table an analyst built over JDBC: its files where the SQL endpoint keeps a sandbox's tables.
    spark.createDataFrame([("free", 3), ("paid", 2)], "level string, users int").write.format("delta").save(
        f"{settings.sandbox_path}/analytics.db/levels")
    wh = T.Warehouse(spark, settings)
    index = site.build(settings, root / "site")
    dom = Dom(browse(index, "--dump-dom").stdout)
    return {"wh": wh, "index": index, "dom": dom, "root": root}


def test_flow_shows_each_tables_rows_and_version(built: dict[str, Any]) -> None:
    wh, dom = built["wh"], built["dom"].root
    shown = {el.attrs["data-table"]: el for el in dom.find(class_="node") if "data-table" in el.attrs}
    present = [t for t in T.ALL_TABLES if wh.exists(t)]
    assert set(shown) == {t.qualified for t in present}
    for table in present:
        node = shown[table.qualified]
        rows = wh.spark.sql(f"SELECT count(*) FROM delta.`{wh.path(table)}`").head()[0]
        assert number(node.find(class_="rows")[0].text) == rows, table.qualified
        assert number(node.find(class_="version")[0].text) == wh.version(table), table.qualified
        # the box opens the table's own section: grain, columns, versions
        section = dom.find(id=node.attrs["href"].lstrip("#"))
        assert len(section) == 1 and table.qualified in section[0].text
        assert all(f.name in section[0].text for f in table.schema.fields)


def test_runs_match_the_run_log_and_the_failed_run_stands_out(built: dict[str, Any]) -> None:
    wh, dom = built["wh"], built["dom"].root
    runs = wh.spark.sql(f"SELECT * FROM delta.`{wh.path(T.RUNS)}`").collect()
    assert sorted(r.status for r in runs) == ["failed", "succeeded"]
    for r in runs:
        (tr,) = dom.find(data_run=r.run_id)
        for key in ("files_in", "rows_in", "rows_loaded", "rows_quarantined"):
            assert number(tr.find(data_k=key)[0].text) == r[key], (r.run_id, key)
        assert ("failed" in tr.attrs["class"].split()) == (r.status == "failed")
        if r.status == "failed":
            assert "FAILED" in tr.text and "stop_here" in tr.text
    assert number(dom.find(id="runs-failed")[0].text) == 1
    assert dom.find(id="last-run-status")[0].text.strip() == "failed"


def test_quarantined_script_is_shown_as_text_never_run(built: dict[str, Any]) -> None:
    wh, dom = built["wh"], built["dom"]
    assert "script" not in dom.tags  # neither the page nor the data brought a script element
    samples = [el.text for el in dom.root.find(class_="raw")]
    assert any(SCRIPT_LINE in s for s in samples), samples
    title = dom.root.find(class_="quarantine")
    rows = wh.spark.sql(f"SELECT count(*) FROM delta.`{wh.path(T.QUARANTINE)}`").head()[0]
    assert sum(number(el.find(data_k="rows")[0].text) for el in title) == rows
    assert "pwned" not in "".join(el.text for el in dom.root.find(class_="big"))
    assert "pwned" not in dom.root.find(class_="node")[0].text


def test_freshness_and_answers_match_gold(built: dict[str, Any]) -> None:
    wh, dom = built["wh"], built["dom"].root
    newest = wh.spark.sql(f"SELECT max(start_time) FROM delta.`{wh.path(T.SONGPLAYS)}`").head()[0]
    assert dom.find(id="newest-event")[0].text.strip() == newest.strftime("%Y-%m-%d %H:%M:%S")
    wh.register(T.GOLD_TABLES)
    for key in ("03_plays_per_hour", "05_plays_per_weekday", "04_free_vs_paid"):
        expected = [[str(v) for v in r] for r in wh.spark.sql((SQL_DIR / f"{key}.sql").read_text()).collect()]
        (table,) = dom.find(data_answer=key)
        shown = [[td.text.strip() for td in tr.children] for tr in table.find() if tr.tag == "tr" and tr.children[0].tag == "td"]
        assert shown == expected, key
        assert dom.find(id=f"answer-{key}")[0].find()[0].tag == "svg"  # and drawn as a chart


def test_the_analysts_schemas_are_listed_beside_the_lakehouses(built: dict[str, Any]) -> None:
    from delta.tables import DeltaTable

    (row,) = built["dom"].root.find(data_table="analytics.levels")
    cells = [c.text.strip() for c in row.children]
    detail = DeltaTable.forPath(built["wh"].spark, f"{built['wh'].settings.sandbox_path}/analytics.db/levels").detail().head()
    assert cells[:4] == ["analytics", "levels", "0", str(detail["numFiles"])]
    assert cells[4] == site.human_bytes(detail["sizeInBytes"])


def test_screenshot(built: dict[str, Any]) -> None:
    shot = built["root"] / "dashboard.png"
    browse(built["index"], f"--screenshot={shot}", "--window-size=1400,2200")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
