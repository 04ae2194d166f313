"""Helpers for end-to-end tests: landing files, reading gold back."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from pyspark.sql import DataFrame

from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.generate import GenerateSpec, land  # noqa: F401  (the tests land files with it)
from lakehouse.pipeline import Pipeline, RunReport

_T = TypeVar("_T")
DATA_TABLES = tuple(t for t in T.ALL_TABLES if t is not T.RUNS)


def run(spark, settings: Settings, kind: str = "incremental") -> RunReport:
    return Pipeline(spark, settings).run(kind)


def gold_tables(spark, settings: Settings) -> dict[str, DataFrame]:
    wh = T.Warehouse(spark, settings)
    return {t.qualified: wh.read(t) for t in T.GOLD_TABLES}


def versions(spark, settings: Settings) -> dict[str, int]:
    wh = T.Warehouse(spark, settings)
    return {t.qualified: wh.version(t) for t in DATA_TABLES}


REAL_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "sparkify"
# A small landing zone several modules read (test_cli, test_scheduling): one warehouse for them all (generated_warehouse).
SMALL = GenerateSpec(songs=60, users=10, days=2, events_per_day=300, seed=3)
# The environment of `lakehouse thrift start` in the suite: the endpoint's C2 inlines less (spark.driver_jit = "lean"),
# so it compiles less in a module's minutes (docs/performance.md#driver-start).
LEAN_ENDPOINT = {"LAKEHOUSE_SPARK_DRIVER_JIT": "lean"}


@dataclasses.dataclass(frozen=True)
class Built:
    """A warehouse built by one incremental run over a landing zone (read both; copy the warehouse to change it)."""

    root: Path  # the landing zone
    settings: Settings
    report: RunReport

    def copy(self, to: Path) -> Settings:
        """A copy of the warehouse at `to`, for a test that writes (its source is the same landing zone)."""
        shutil.copytree(self.settings.warehouse.removeprefix("file:"), to)
        return dataclasses.replace(self.settings, warehouse=f"file:{to.resolve()}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """`lakehouse ARGS` run by `lakehouse.cli.main` in this process, on the suite's SparkSession (no JVM start).

    For tests of what a command prints and returns; tests of the process itself (exit before Spark starts,
    Java checks, kills) run the real console script instead.
    """
    from lakehouse import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(args))
    return subprocess.CompletedProcess(["lakehouse", *args], code, out.getvalue(), err.getvalue())


def installed(find: Callable[[], _T | None], *packages: str, what: str) -> _T:
    """What `find` finds, after installing the Debian `packages` when it finds nothing (root only); else skip the test."""
    found = find()
    if found:
        return found
    problem = apt_install(*packages)
    if problem:
        pytest.skip(f"{what} is not installed and could not be installed ({problem})")
    found = find()
    if not found:
        pytest.skip(f"apt-get installed {' '.join(packages)} but no {what} was found")
    return found


def apt_install(*packages: str) -> str | None:
    """Install Debian packages (`apt-get update` first); None when done, else why not (not root, no apt, failure).

    Test workers running side by side take turns (a lock file), since apt allows one install at a time.
    """
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return f"needs root and apt-get: apt-get install {' '.join(packages)}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(Path(tempfile.gettempdir()) / "lakehouse-tests-apt.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]):
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
            if proc.returncode != 0:
                return f"{' '.join(cmd)} failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    return None


def pyhive(port: int, user: str, password: str, cafile: Path | None = None, auth: str = "CUSTOM",
           configuration: dict[str, str] | None = None):
    """A PyHive connection: PLAIN SASL sign-in, over TLS (verifying the server against `cafile`) when given."""
    from pyhive import hive

    if cafile is None:
        return hive.connect(host="127.0.0.1", port=port, username=user, password=password, auth=auth, configuration=configuration)
    import thrift_sasl
    from thrift.transport import TSSLSocket

    sock = TSSLSocket.TSSLSocket("127.0.0.1", port, ssl_context=ssl.create_default_context(cafile=str(cafile)))
    transport = thrift_sasl.TSaslClientTransport(
        lambda: hive.get_installed_sasl(host="127.0.0.1", sasl_auth="PLAIN", username=user, password=password), "PLAIN", sock)
    return hive.connect(thrift_transport=transport, configuration=configuration)


def query(conn, sql: str) -> list[tuple]:
    cur = conn.cursor()
    cur.execute(sql)
    return list(cur.fetchall())
