"""Symlink manifests for Athena / Redshift Spectrum list exactly the files of the current table version."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from lakehouse import tables as T
from lakehouse.generate import GenerateSpec, generate
from lakehouse.operations import catalog

from .helpers import run

pytestmark = pytest.mark.e2e


def _manifest_files(table_dir: Path) -> set[str]:
    lines = set()
    for manifest in (table_dir / "_symlink_format_manifest").rglob("manifest"):
        lines |= {unquote(line.strip()).replace("file:///", "file:/") for line in manifest.read_text().splitlines() if line.strip()}
    return lines


def _current_files(spark, path: str) -> set[str]:
    return {unquote(f).replace("file:///", "file:/") for f in spark.read.format("delta").load(path).inputFiles()}


def test_manifests_follow_every_commit(spark, make_settings, tmp_path: Path) -> None:
    generated = tmp_path / "generated"
    generate(generated, GenerateSpec(songs=40, users=8, days=3, events_per_day=200, seed=9))
    landing = tmp_path / "landing"
    (landing / "log_data" / "2018" / "11").mkdir(parents=True)
    import shutil

    shutil.copytree(generated / "song_data", landing / "song_data")
    day_files = sorted((generated / "log_data" / "2018" / "11").iterdir())
    for f in day_files[:2]:
        shutil.copy2(f, landing / "log_data" / "2018" / "11" / f.name)
    settings = make_settings(landing, tmp_path / "wh")
    run(spark, settings)
    wh = T.Warehouse(spark, settings)
    done = catalog.manifests(wh)
    assert [d["table"] for d in done] == [t.qualified for t in T.GOLD_TABLES]
    assert "PARTITIONED BY (`year` int, `month` int)" in done[0]["ddl"] and "SymlinkTextInputFormat" in done[0]["ddl"]

    for table in T.GOLD_TABLES:
        table_dir = Path(wh.path(table).removeprefix("file:"))
        assert _manifest_files(table_dir) == _current_files(spark, wh.path(table)), table.qualified

    # A later run changes gold; Delta rewrites the manifests with the commit.
    shutil.copy2(day_files[2], landing / "log_data" / "2018" / "11" / day_files[2].name)
    run(spark, settings)
    songplays_dir = Path(wh.path(T.SONGPLAYS).removeprefix("file:"))
    assert _manifest_files(songplays_dir) == _current_files(spark, wh.path(T.SONGPLAYS))
