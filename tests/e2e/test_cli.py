"""The command line as an operator uses it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import SMALL, cli_in_process

LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAKEHOUSE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def _assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert proc.returncode == code, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr and "\tat org.apache" not in proc.stderr


def test_bad_source_fails_fast_without_starting_spark(tmp_path: Path) -> None:
    proc = cli("run", "incremental", "--source", str(tmp_path / "missing"), "--warehouse", str(tmp_path / "wh"))
    _assert_one_line_error(proc, 2, "no such directory")
    (tmp_path / "empty").mkdir()
    proc = cli("run", "incremental", "--source", str(tmp_path / "empty"), "--warehouse", str(tmp_path / "wh"))
    _assert_one_line_error(proc, 2, "neither song_data/ nor log_data/")
    proc = cli("run", "incremental", "--source", "s3://bucket/x")
    _assert_one_line_error(proc, 2, "use the s3a:// scheme")
    # `full` rebuilds from bronze, but a warehouse without bronze still needs a landing zone.
    proc = cli("run", "full", "--source", str(tmp_path / "missing"), "--warehouse", str(tmp_path / "wh"))
    _assert_one_line_error(proc, 2, "no such directory")


def test_reingest_flags_go_with_run_full(tmp_path: Path) -> None:
    (tmp_path / "landing" / "log_data").mkdir(parents=True)
    where = ("--source", str(tmp_path / "landing"), "--warehouse", str(tmp_path / "wh"))
    _assert_one_line_error(cli("run", "incremental", "--reingest", *where), 2, "go with `run full`")
    _assert_one_line_error(cli("run", "full", "--allow-missing-source", *where), 2, "goes with --reingest")


def test_missing_or_old_java_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "landing" / "log_data").mkdir(parents=True)
    args = ("run", "incremental", "--source", str(tmp_path / "landing"), "--warehouse", str(tmp_path / "wh"))
    _assert_one_line_error(cli(*args, env={"JAVA_HOME": str(tmp_path / "no-java")}), 2, "Java not found")
    old = tmp_path / "old-jdk" / "bin"
    old.mkdir(parents=True)
    (old / "java").write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    (old / "java").chmod(0o755)
    _assert_one_line_error(cli(*args, env={"JAVA_HOME": str(tmp_path / "old-jdk")}), 2, "Java 11")


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    _assert_one_line_error(cli("run", "full", "--env", "nosuchenv"), 2, "no file")
    _assert_one_line_error(cli("sql", "SELECT 1", "--warehouse", str(tmp_path)), 2, "holds no tables yet")
    _assert_one_line_error(cli("generate", "--out", str(tmp_path / "g"), "--songs", "0"), 2, "songs")
    _assert_one_line_error(cli("generate", "--out", str(tmp_path / "g"), "--start", "yesterday"), 2, "--start")


@pytest.mark.e2e
def test_sql_history_restore_against_a_real_warehouse(spark, generated_warehouse, tmp_path: Path) -> None:
    settings = generated_warehouse(SMALL).copy(tmp_path / "wh")  # one incremental run's warehouse, to restore in
    wh = ["--warehouse", str(tmp_path / "wh")]

    proc = cli("sql", "SELECT level, count(*) AS n FROM gold.users GROUP BY level ORDER BY level", "--format", "json", *wh)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    expected = {r.level: r.n for r in spark.read.format("delta").load(f"{settings.warehouse}/gold/users")
                .groupBy("level").count().withColumnRenamed("count", "n").collect()}
    assert {r["level"]: r["n"] for r in rows} == expected

    # Time travel, and the change feed that downstream jobs read (every row of the first run is an insert).
    plays = spark.read.format("delta").load(f"{settings.warehouse}/gold/songplays").count()
    proc = cli_in_process("sql", "SELECT (SELECT count(*) FROM gold.songplays VERSION AS OF 0) AS n, (SELECT count(*) FROM "
               "table_changes('gold.songplays', 0) WHERE _change_type = 'insert') AS inserted", "--format", "csv", *wh)
    assert proc.returncode == 0 and proc.stdout.splitlines() == ["n,inserted", f"0,{plays}"], proc.stderr

    _assert_one_line_error(cli_in_process("sql", "SELECT * FROM gold.nope", *wh), 2, "gold`.`nope")
    _assert_one_line_error(cli_in_process("sql", "SELECT * FROM gold.songs VERSION AS OF 99", *wh), 2, "99")
    _assert_one_line_error(cli_in_process("history", "gold.nope", *wh), 2, "no table 'gold.nope'")
    _assert_one_line_error(cli_in_process("restore", "gold.songs", "--version", "42", *wh), 2, "has no version 42")

    _assert_one_line_error(cli_in_process("restore", "gold.songs", "--timestamp", "2001-01-01 00:00:00", *wh), 2, "did not exist at")
    _assert_one_line_error(cli_in_process("restore", "gold.songs", "--timestamp", "soon", *wh), 2, "--timestamp")

    proc = cli_in_process("runs", "--format", "json", *wh)
    assert proc.returncode == 0, proc.stderr
    runs = [json.loads(line) for line in proc.stdout.splitlines()]
    latest = runs[0]
    assert (latest["status"], latest["kind"]) == ("succeeded", "incremental")
    assert (latest["rows_in"], latest["rows_loaded"], latest["rows_quarantined"]) == (660, 660, 0)

    proc = cli_in_process("restore", "gold.songs", "--version", "0", *wh)
    assert proc.returncode == 0 and "undo: lakehouse restore gold.songs --version 1" in proc.stderr, proc.stderr
    proc = cli_in_process("history", "gold.songs", "--format", "json", *wh)
    ops = [json.loads(line)["operation"] for line in proc.stdout.splitlines()]
    assert ops[0] == "RESTORE" and len(ops) == 3
