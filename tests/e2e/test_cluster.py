"""The daily job on a real Spark standalone cluster: a master and one worker on 127.0.0.1, `spark-submit` in client mode.

Nothing here runs in the test's own SparkSession except reading gold back: the job's driver is a spark-submit
process, its tasks run in an executor JVM launched by the worker, with the package shipped as `--py-files`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse import tables as T
from lakehouse.config import load_settings
from lakehouse.generate import GenerateSpec, generate
from lakehouse.session import write_spark_submit_defaults

from .helpers import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SPEC = GenerateSpec(songs=40, users=8, days=2, events_per_day=200)
START_TIMEOUT = 180  # master up + worker registered, on a busy 2-core machine
SUBMIT_TIMEOUT = 900
MASTER_UI = re.compile(r"Successfully started service 'MasterUI' on port (\d+)")


def _tail(path: Path, chars: int = 4000) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-chars:]
    return ""


@dataclass
class Cluster:
    url: str  # spark://127.0.0.1:PORT
    web: str  # http://127.0.0.1:PORT of the master's UI
    work_dir: Path
    logs: Path
    env: dict[str, str]

    def state(self) -> dict:
        with urllib.request.urlopen(f"{self.web}/json/", timeout=10) as resp:
            return json.load(resp)

    def alive_workers(self) -> int:
        try:
            state = self.state()
        except (OSError, ValueError):
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the process group, SIGKILL it if it is still there after 20 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    logs, work_dir, conf_dir = root / "logs", root / "work", root / "conf"
    for d in (logs, work_dir, conf_dir):
        d.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_GATEWAY", "SPARK_", "LAKEHOUSE_"))}
    env.update(
        {
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_MASTER_HOST": "127.0.0.1",
            "SPARK_CONF_DIR": str(conf_dir),  # empty: nothing from a spark-defaults.conf elsewhere
            "SPARK_DAEMON_MEMORY": "512m",
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    port, web = free_port(), free_port()
    spark_class = str(BIN / "spark-class")
    commands = {
        "master": [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(web)],
        "worker": [spark_class, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}", "--host", "127.0.0.1",
                   "--cores", "1", "--memory", "1g", "--work-dir", str(work_dir)],
    }
    c = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}", work_dir, logs, env)
    procs: dict[str, subprocess.Popen] = {}
    deadline = time.monotonic() + START_TIMEOUT

    def wait_for(what: str, ready: Callable[[], bool]) -> None:
        while not ready():
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                reason = f"{', '.join(dead)} exited" if dead else f"{what} within {START_TIMEOUT}s"
                pytest.fail(f"standalone cluster did not start: {reason}\n"
                            + "\n".join(f"--- {n}.log\n{_tail(logs / f'{n}.log')}" for n in procs))
            time.sleep(0.5)

    def start(name: str) -> None:
        with open(logs / f"{name}.log", "wb") as out:
            procs[name] = subprocess.Popen(commands[name], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env=env, cwd=root, start_new_session=True)

    try:
        # The master first, and its UI's port from its log: a port taken meanwhile moves the UI to the next one
        # (a worker started beside it once took the UI's port, and the test then asked a Spark RPC port for JSON).
        start("master")
        def ui_ports() -> list[str]:
            return MASTER_UI.findall(_tail(logs / "master.log", 100_000))

        wait_for("no master UI", lambda: bool(ui_ports()))
        c.web = f"http://127.0.0.1:{ui_ports()[-1]}"
        start("worker")
        wait_for("no worker registered", lambda: c.alive_workers() >= 1)
        yield c
    finally:
        for name in reversed(list(procs)):
            _stop(procs[name])


@pytest.fixture(scope="module")
def package_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lakehouse/ as a zip for --py-files (what a cluster without the package installed needs)."""
    target = tmp_path_factory.mktemp("dist") / "lakehouse.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted((ROOT / "lakehouse").rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                zf.write(f, f.relative_to(ROOT).as_posix())
    return target


@pytest.fixture(scope="module")
def properties_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("conf") / "spark-defaults.conf"
    write_spark_submit_defaults(load_settings(), str(target))
    return target


def _expected_songplays(landing: Path) -> int:
    plays = set()
    for f in sorted(landing.glob("log_data/**/*.json")):
        for line in f.read_text().splitlines():
            if line.strip():
                e = json.loads(line)
                if e["page"] == "NextSong" and e["userId"]:
                    plays.add((int(e["userId"]), e["sessionId"], e["itemInSession"], e["ts"]))
    return len(plays)


def _submit(cluster: Cluster, properties: Path, package: Path, landing: Path, warehouse: Path, log: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(BIN / "spark-submit"), "--master", cluster.url, "--deploy-mode", "client",
        "--properties-file", str(properties), "--py-files", str(package),
        "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g",
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
        "jobs/daily.py", "--source", str(landing), "--warehouse", str(warehouse),
    ]
    result = subprocess.run(cmd, cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=SUBMIT_TIMEOUT, stdin=subprocess.DEVNULL)
    log.write_text(f"$ {' '.join(cmd)}\n--- exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


def _explain(result: subprocess.CompletedProcess[str], cluster: Cluster) -> str:
    return (f"spark-submit exited {result.returncode}\n--- stderr\n{result.stderr[-6000:]}\n"
            f"--- worker.log\n{_tail(cluster.logs / 'worker.log', 2000)}")


def test_daily_job_on_standalone_cluster(cluster, package_zip, properties_file, spark, make_settings, tmp_path: Path) -> None:
    landing, warehouse = tmp_path / "landing", tmp_path / "warehouse"
    generate(landing, SPEC)
    settings = make_settings(landing, warehouse)

    first = _submit(cluster, properties_file, package_zip, landing, warehouse, tmp_path / "submit-1.log")
    assert first.returncode == 0, _explain(first, cluster)

    wh = T.Warehouse(spark, settings)
    expected = _expected_songplays(landing)
    assert expected > 0
    assert wh.read(T.SONGPLAYS).count() == expected
    assert wh.read(T.GOLD_USERS).count() > 0

    # The work really ran in an executor that the worker launched: the master lists the finished application,
    # and the worker's work dir holds that application's executor logs.
    deadline = time.monotonic() + 60
    while True:
        state = cluster.state()
        completed = [a for a in state.get("completedapps", []) if a.get("name") == "lakehouse-incremental"]
        if completed or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert completed, f"no completed application on the master: {json.dumps(state)[:2000]}"
    app_dirs = sorted(cluster.work_dir.glob("app-*"))
    assert app_dirs, f"no app-* directory in the worker's work dir {cluster.work_dir}"
    assert completed[0]["id"] in {d.name for d in app_dirs}
    executor_dir = cluster.work_dir / completed[0]["id"] / "0"
    assert "CoarseGrainedExecutorBackend" in _tail(executor_dir / "stderr", 100_000), f"no executor log in {executor_dir}"
    assert (executor_dir / package_zip.name).is_file(), "the --py-files zip did not reach the executor"

    # Nothing new landed: the second run through the cluster succeeds and writes no new version of the fact table.
    version = wh.version(T.SONGPLAYS)
    second = _submit(cluster, properties_file, package_zip, landing, warehouse, tmp_path / "submit-2.log")
    assert second.returncode == 0, _explain(second, cluster)
    assert wh.version(T.SONGPLAYS) == version
    assert wh.read(T.SONGPLAYS).count() == expected
