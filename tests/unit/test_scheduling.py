"""What schedulers run, without Spark: the gate's checks, the watch's period, Delta commits that change no data,
and deploy/'s unit files and crontab (systemd-analyze verify where it is installed)."""

from __future__ import annotations

import datetime
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lakehouse.errors import ConfigError, TableNotFound
from lakehouse.operations.gate import checks, run_row
from lakehouse.record.pending import changes_data
from lakehouse.watch import parse_every

ROOT = Path(__file__).resolve().parents[2]
INSTALLED_AT = "/opt/sparkify-lakehouse"  # where deploy/'s files expect the checkout


def _row(status: str = "succeeded", rows_in: int = 1000, loaded: int = 995, quarantined: int = 5, violations: int = 0) -> dict:
    return {"run_id": "r", "kind": "incremental", "status": status, "rows_in": rows_in, "rows_loaded": loaded,
            "rows_quarantined": quarantined, "error": None if status == "succeeded" else "LakehouseError: rule broken",
            "details": json.dumps({"quality_rule_violations": {"events.page_known": violations}})}


def test_gate_passes_a_clean_run_and_names_what_fails() -> None:
    def failed(row: dict, share: float = 0.01) -> list[str]:
        return [c.name for c in checks(row, share, share) if not c.passed]

    assert failed(_row()) == []
    assert failed(_row(status="failed")) == ["succeeded"]
    assert failed(_row(loaded=990)) == ["reconciled"]
    assert failed(_row(loaded=980, quarantined=20)) == ["quarantine"]
    assert failed(_row(loaded=980, quarantined=20), share=0.05) == []
    assert failed(_row(violations=11)) == ["rules"]
    assert failed(_row(rows_in=0, loaded=0, quarantined=0)) == []  # a run that read nothing has nothing to hold back
    assert "rule broken" in checks(_row(status="failed"), 0.01, 0.01)[0].detail


def test_gate_checks_the_run_asked_for_or_the_latest_incremental_or_full_one() -> None:
    at = datetime.datetime
    rows = [{**_row(), "run_id": "a", "kind": "full", "started_at": at(2026, 12, 1)},
            {**_row(), "run_id": "b", "kind": "incremental", "started_at": at(2026, 12, 2)},
            {**_row(), "run_id": "c", "kind": "forget", "started_at": at(2026, 12, 3)}]
    assert run_row(rows, None)["run_id"] == "b"  # an erasure run is not what a gate holds back
    assert run_row(rows, "a")["run_id"] == "a"
    with pytest.raises(TableNotFound, match=r"no run 'z' in ops\.runs"):
        run_row(rows, "z")
    with pytest.raises(TableNotFound, match="no incremental or full run"):
        run_row(rows[2:], None)


def test_watch_period() -> None:
    assert [parse_every(t) for t in ("30s", "30", "2m", "1h", "0.5s")] == [30, 30, 120, 3600, 0.5]
    for bad in ("0", "-5s", "soon", "5d", ""):
        with pytest.raises(ConfigError, match="positive duration"):
            parse_every(bad)


def test_commits_that_change_no_data_keep_the_landed_files_index_current() -> None:
    info = json.dumps({"commitInfo": {"operation": "OPTIMIZE"}})
    optimize = "\n".join([info, json.dumps({"remove": {"path": "a", "dataChange": False}}),
                          json.dumps({"add": {"path": "b", "dataChange": False}})])
    append = "\n".join([info, json.dumps({"add": {"path": "c", "dataChange": True}})])
    assert not changes_data(optimize) and not changes_data(info) and not changes_data("")
    assert changes_data(append) and changes_data(json.dumps({"remove": {"path": "a"}}))  # dataChange defaults to true


def test_systemd_units_parse(tmp_path: Path) -> None:
    """`systemd-analyze verify` on the units, with the checkout where they expect it (ExecStart must exist)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    if not (ROOT / ".venv" / "bin" / "spark-submit").exists():
        pytest.skip("the units start .venv/bin/spark-submit: run `make setup` first")
    units = sorted((ROOT / "deploy" / "systemd").glob("*.[st]*"))
    assert {u.name for u in units} >= {"lakehouse-daily.service", "lakehouse-daily.timer", "lakehouse-watch.service"}
    for unit in units:
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_AT, str(ROOT)))
    proc = subprocess.run([analyze, "verify", *(str(tmp_path / u.name) for u in units)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    watch = (ROOT / "deploy" / "systemd" / "lakehouse-watch.service").read_text()
    assert "KillMode=mixed" in watch and "RestartPreventExitStatus=2" in watch  # SIGTERM to the watcher only; 2 needs an operator


def test_crontab_lines_are_valid_and_start_jobs_that_exist() -> None:
    ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    jobs = 0
    for line in (ROOT / "deploy" / "cron" / "lakehouse.crontab").read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 5)
        for value, (lo, hi) in zip(fields[:5], ranges, strict=True):
            assert value == "*" or all(lo <= int(n) <= hi for n in re.split(r"[,-]", value)), line
        for job in re.findall(r"jobs/\w+\.py", fields[5]):
            assert (ROOT / job).is_file(), job
            jobs += 1
        assert "--properties-file .cache/spark-defaults.conf" in fields[5]
    assert jobs == 2
