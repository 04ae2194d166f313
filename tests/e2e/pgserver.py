"""A throwaway PostgreSQL server on 127.0.0.1 for one test module (a team's metastore: catalog = postgres).

PostgreSQL comes from the Debian package `postgresql`; when it is missing and we are root, it is installed
(`apt-get update` once, then `apt-get install postgresql`); the test skips with the reason only when that fails.
initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (`runuser -u postgres`) and
lives in a folder of its own under the temp dir; it is stopped and removed afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .helpers import free_port, installed


@dataclass
class Postgres:
    port: int
    database: str
    user: str
    password: str
    bindir: Path

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/{self.database}"

    def query(self, sql: str, database: str | None = None) -> list[str]:
        """Rows of `sql` as the metastore's user sees them (psql over TCP), one '|'-separated line each."""
        proc = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, "-d", database or self.database,
             "-At", "-c", sql], capture_output=True, text=True, timeout=60, env={**os.environ, "PGPASSWORD": self.password})
        if proc.returncode != 0:
            raise RuntimeError(f"psql failed: {proc.stderr.strip()[-500:]}")
        return proc.stdout.splitlines()


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def ensure_postgres() -> Path:
    """The folder of initdb, pg_ctl and psql, installed from the Debian packages when missing (root only); else skip."""
    return installed(_bindir, "postgresql", what="PostgreSQL (initdb under /usr/lib/postgresql)")


@contextlib.contextmanager
def postgres_server(database: str, user: str, password: str) -> Iterator[Postgres]:
    """A cluster with `database` owned by `user` (password sign-in) on a free 127.0.0.1 port; removed afterwards."""
    bindir = ensure_postgres()
    root = Path(tempfile.mkdtemp(prefix="lakehouse-pg-"))
    as_owner: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    (root / "pw").write_text(password + "\n")
    if as_owner:
        os.chown(root / "pw", owner.pw_uid, owner.pw_gid)

    def run(*cmd: str) -> None:
        proc = subprocess.run([*as_owner, *cmd], capture_output=True, text=True, timeout=120, cwd=root)
        if proc.returncode != 0:
            raise RuntimeError(f"{Path(cmd[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", user, "--pwfile", str(root / "pw"), "-A", "scram-sha-256",
            "-E", "UTF8", "--no-instructions")
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
            f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off", "start")
        server = Postgres(port, database, user, password, bindir)
        server.query(f"CREATE DATABASE {database}", database="postgres")
        yield server
    finally:
        with contextlib.suppress(Exception):
            run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
