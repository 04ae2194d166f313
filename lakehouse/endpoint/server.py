"""Spark Thrift Server (JDBC/ODBC endpoint) over the warehouse's tables.

`lakehouse thrift start` launches `python -m lakehouse.endpoint.server serve ...` in the background, in a process
group of its own. That driver builds the project's SparkSession (Delta, UTC, the cached jars: `session.spark_conf`)
with the catalog of the `catalog` setting, registers every table of the warehouse that its catalog lacks (by
location), starts HiveServer2 inside the same JVM (`GuardedThriftServer.start`: Spark's own start, sessions
guarded) and then looks again every `LAKEHOUSE_THRIFT_REFRESH_SECONDS` (30) so tables that a later run creates
show up too. New commits to tables already registered need nothing: Delta re-reads its log on every query.

The catalog: `embedded` (the default) is a Derby metastore that this server alone opens (Derby admits one JVM),
under the warehouse's `_system/metastore` (for a warehouse on S3: under the run dir), so analysts' schemas,
tables and views outlive a restart while the daily runs go on writing by path; `postgres` is the team's one
metastore, shared with the jobs; `memory` registers everything again at each start (nothing else survives).

Sign-in (none on loopback only, a password file, LDAP), TLS and the write policy of every JDBC session
(`WritePolicy.java`: the lakehouse's schemas read-only, the analysts' sandboxes writable by their users) are
set up by `lakehouse.endpoint.security` and here; `start` checks what it can before launching anything.

HiveServer2's scratch space lives in a work dir per port. The pid file `<port>.pid`, the details `<port>.json`
(what `status` prints, without starting a JVM), the log `<port>.log` and that work dir `<port>/` are under
`.cache/thrift/` (or `LAKEHOUSE_RUN_DIR`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import getpass
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lakehouse import deps
from lakehouse.config import SETTINGS, Settings, load_settings
from lakehouse.endpoint import security
from lakehouse.errors import LakehouseError
from lakehouse.state import pid_alive, proc_stat

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SERVE_MODULE = "lakehouse.endpoint.server"
DEFAULT_START_TIMEOUT = 90.0
DEFAULT_REFRESH_SECONDS = 30.0
STOP_TIMEOUT = 30.0
WORK_SUBDIRS = ("scratch", "hive-scratch", "resources", "operation_logs", "querylog")


# ---------------------------------------------------------------------------------------- files
def run_dir() -> Path:
    """Where pid, log and work dirs of the Thrift servers live."""
    return Path(os.environ.get("LAKEHOUSE_RUN_DIR") or deps.CACHE_DIR / "thrift")


def pid_file(port: int) -> Path:
    return run_dir() / f"{port}.pid"


def info_file(port: int) -> Path:
    return run_dir() / f"{port}.json"


def log_file(port: int) -> Path:
    return run_dir() / f"{port}.log"


def work_dir(port: int) -> Path:
    return run_dir() / str(port)


def embedded_metastore(settings: Settings) -> Path:
    """Where `catalog = embedded` keeps its Derby database: the warehouse's `_system/metastore` when the warehouse
    is a local folder; for one on S3 (Derby needs a local disk), a folder named after it in the run dir."""
    if settings.warehouse.startswith("file:"):
        return Path(urlparse(settings.warehouse).path) / "_system" / "metastore"
    return run_dir() / "metastore" / re.sub(r"[^A-Za-z0-9._-]+", "_", settings.warehouse)


def catalog_description(settings: Settings) -> str:
    """The catalog in one phrase, for `start`, `status` and the log (never a password)."""
    if settings.catalog == "embedded":
        return f"embedded (Derby in {embedded_metastore(settings)})"
    if settings.catalog == "postgres":
        return f"postgres ({settings.metastore_url}, user {settings.metastore_user or '?'})"
    return "memory (tables registered at each start)"


def writable_description(settings: Settings) -> str:
    """Which schemas which users may write over JDBC (the write policy, WritePolicy.java), in one phrase."""
    writers = ", ".join(settings.writers)
    if settings.thrift_auth == "none":
        local = getpass.getuser()
        who = f"the local user {local}" if not writers or local in settings.writers else f"nobody (thrift.writers: {writers})"
        return f"analytics, analytics_* by {who}; no dev_<user> schemas without sign-in"
    return f"analytics, analytics_* by {writers or 'every signed-in user'}; dev_<user>, dev_<user>_* by that user"


def lakehouse_schemas() -> list[str]:
    """The schemas the lakehouse declares (read-only over JDBC)."""
    from lakehouse import tables as T

    return sorted({t.layer for t in T.ALL_TABLES})


def jdbc_url(host: str, port: int, params: str = "") -> str:
    return f"jdbc:hive2://{_probe_host(host)}:{port}/default{params}"


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise LakehouseError(f"environment variable {name}={value!r}: expected a number of seconds") from None


# ---------------------------------------------------------------------------------------- processes
def _group_alive(pgid: int) -> bool:
    """True while any live process is left in process group `pgid` (the driver or its JVM)."""
    if Path("/proc").is_dir():
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = proc_stat(int(entry.name))
                if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
                    return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _is_server(pid: int) -> bool:
    """True when `pid` is a Thrift server driver of ours (guards against a reused pid)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the pid file
    return SERVE_MODULE.encode() in cmdline and b"serve" in cmdline


def _read_pid(port: int) -> int | None:
    try:
        return int(pid_file(port).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_info(port: int) -> dict[str, Any]:
    try:
        data = json.loads(info_file(port).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _running_pid(port: int) -> int | None:
    """The pid of the server on `port` when it runs; removes a stale pid file."""
    pid = _read_pid(port)
    if pid is None:
        return None
    if _is_server(pid):
        return pid
    _remove_pid_files(port)
    return None


def _remove_pid_files(port: int) -> None:
    for path in (pid_file(port), info_file(port)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _probe_host(host: str) -> str:
    """The address a client on this machine connects to for a server bound to `host`."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "*") else host


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((_probe_host(host), port), timeout=1.0):
            return True
    except OSError:
        return False


def _port_free(host: str, port: int) -> bool:
    """True when a server could listen on host:port (a listener anywhere on the port blocks it)."""
    if _accepts(host, port):
        return False
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise LakehouseError(f"thrift.host {host!r}: cannot resolve it ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As Java's ServerSocket does: connections of an earlier server in TIME_WAIT do not block it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return False
    return True


def _last_lines(path: Path, count: int = 40) -> list[str]:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            lines = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [ln.rstrip() for ln in lines if ln.strip()][-count:]


def _failure_line(path: Path) -> str:
    """The most telling line at the end of the server's log (an error if there is one)."""
    lines = [ln for ln in _last_lines(path) if not ln.lstrip().startswith("at ") and not ln.startswith("\t")]
    for marker in ("error:", "Exception", "Error", " ERROR ", "FATAL"):
        hits = [ln for ln in lines if marker in ln]
        if hits:
            return hits[-1].strip().removeprefix("error: ")[:300]
    return lines[-1].strip()[:300] if lines else "(the log is empty)"


# ---------------------------------------------------------------------------------------- commands
def command(settings: Settings, action: str, name: str | None = None) -> int:
    """`lakehouse thrift start|stop|status|add-user NAME|cert`."""
    if action == "add-user":
        return add_user(settings, name)
    if action == "cert":
        return cert(settings)
    if action == "start":
        return start(settings)
    if action == "stop":
        return stop(settings)
    if action == "status":
        return status(settings)
    raise LakehouseError(f"unknown thrift action {action!r} (start, stop, status, add-user or cert)")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start(settings: Settings) -> int:
    """Launch the server in the background and wait until it accepts connections; print the JDBC URL."""
    host, port = settings.thrift_host, settings.thrift_port
    if port == 0:
        raise LakehouseError("thrift.port 0: give the server a fixed port (--port N)")
    pid = _running_pid(port)
    if pid is not None:
        raise LakehouseError(
            f"a Thrift server already runs on port {port} (pid {pid}, warehouse "
            f"{_read_info(port).get('warehouse', '?')}): `lakehouse thrift stop --port {port}` first"
        )
    if not _port_free(host, port):
        raise LakehouseError(f"port {port} on {host} is already in use: choose another with --port N")
    security.preflight(settings)  # sign-in, TLS keystore, the compiled classes: one line each
    if settings.catalog == "embedded":
        _check_embedded_free(settings)
    if not settings.thrift_tls and not security.is_loopback(host):
        log.warning("binding the Thrift server to %s without thrift.tls: passwords and rows cross the network in clear text", host)

    directory = work_dir(port)
    directory.mkdir(parents=True, exist_ok=True)
    logpath = log_file(port)
    env = dict(os.environ)
    # Run this very checkout's code, whatever the working directory.
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.pop("PYSPARK_GATEWAY_PORT", None)  # never attach to a JVM of the caller (e.g. under spark-submit)
    env.pop("PYSPARK_GATEWAY_SECRET", None)
    for setting in SETTINGS:  # the server resolves exactly what `start` resolved (flags included)
        if setting.key.startswith("thrift.") and setting.key not in ("thrift.host", "thrift.port"):
            value = getattr(settings, setting.key.replace(".", "_"))
            env[setting.env_var] = str(value).lower() if isinstance(value, bool) else str(value)
    cmd = [
        sys.executable, "-m", SERVE_MODULE, "serve",
        "--env", settings.env, "--warehouse", settings.warehouse, "--host", host, "--port", str(port),
    ]
    _say(f"starting the Spark Thrift Server on {host}:{port} over {settings.warehouse}, sign-in {settings.thrift_auth}, "
         f"{'TLS' if settings.thrift_tls else 'no TLS'}, catalog {catalog_description(settings)} (log: {logpath})")
    with logpath.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=directory, env=env, start_new_session=True,
        )
    pid_file(port).write_text(f"{proc.pid}\n")
    info_file(port).write_text(json.dumps({
        "pid": proc.pid, "host": host, "port": port, "warehouse": settings.warehouse, "env": settings.env,
        "auth": settings.thrift_auth, "tls": settings.thrift_tls, "jdbc_url": jdbc_url(host, port, security.jdbc_params(settings)),
        "catalog": settings.catalog, "catalog_detail": catalog_description(settings),
        "metastore": str(embedded_metastore(settings)) if settings.catalog == "embedded" else settings.metastore_url,
        "read_only": lakehouse_schemas(), "writable": writable_description(settings),
        "log": str(logpath), "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }, indent=2) + "\n")

    timeout = _env_float("LAKEHOUSE_THRIFT_START_TIMEOUT", DEFAULT_START_TIMEOUT)
    started = time.monotonic()
    next_note = 10.0
    while True:
        code = proc.poll()
        if code is not None:
            _remove_pid_files(port)
            raise LakehouseError(
                f"the Thrift server exited during start (exit code {code}): {_failure_line(logpath)} (log: {logpath})"
            )
        if _accepts(host, port):
            break
        elapsed = time.monotonic() - started
        if elapsed > timeout:
            _terminate_group(proc.pid)
            _remove_pid_files(port)
            raise LakehouseError(
                f"the Thrift server did not accept connections on {host}:{port} within {timeout:.0f}s, so it was "
                f"stopped; last log line: {_failure_line(logpath)} (log: {logpath})"
            )
        if elapsed >= next_note:
            _say(f"  still starting ({elapsed:.0f}s)...")
            next_note += 10.0
        time.sleep(0.5)
    _say(f"Thrift server running: pid {proc.pid}, ready in {time.monotonic() - started:.0f}s; "
         f"stop it with `lakehouse thrift stop --port {port}`")
    print(jdbc_url(host, port, security.jdbc_params(settings)), flush=True)
    return 0


def _check_embedded_free(settings: Settings) -> None:
    """Derby admits one JVM: refuse a second server whose embedded catalog is another's (by the servers' info files)."""
    mine = embedded_metastore(settings)
    for info_path in sorted(run_dir().glob("*.json")) if run_dir().is_dir() else []:
        if not info_path.stem.isdigit() or _running_pid(int(info_path.stem)) is None:
            continue
        other = _read_info(int(info_path.stem))
        if other.get("catalog") == "embedded" and other.get("metastore") == str(mine):
            raise LakehouseError(
                f"the Thrift server on port {info_path.stem} (pid {other.get('pid')}) holds this warehouse's embedded catalog "
                f"({mine}; Derby admits one process): stop it first, or share a catalog with catalog = postgres"
            )


def _terminate_group(pgid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM the process group, wait, then SIGKILL what is left. True when it had to kill."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return False
        time.sleep(0.25)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.25)
    return True


def stop(settings: Settings) -> int:
    """Stop the server on the port (SIGTERM to its process group, SIGKILL after 30 s)."""
    port = settings.thrift_port
    pid = _running_pid(port)
    if pid is None:
        _say(f"no Thrift server runs on port {port}")
        _remove_pid_files(port)
        return 0
    _say(f"stopping the Thrift server on port {port} (pid {pid})")
    killed = _terminate_group(pid)
    _remove_pid_files(port)
    _say("stopped" + (" (it did not stop within 30s and was killed)" if killed else ""))
    return 0


def status(settings: Settings) -> int:
    """Print whether a server runs on the port; exit 0 when it does, 1 when not."""
    port = settings.thrift_port
    pid = _running_pid(port)
    if pid is None:
        print(f"not running (port {port})")
        others = sorted(
            (int(p.stem), _read_pid(int(p.stem))) for p in run_dir().glob("*.pid") if p.stem.isdigit()
        ) if run_dir().is_dir() else []
        others = [(p, q) for p, q in others if p != port and q is not None and _is_server(q)]
        if others:
            print("other Thrift servers: " + ", ".join(f"port {p} (pid {q})" for p, q in others))
        return 1
    info = _read_info(port)
    host = str(info.get("host", settings.thrift_host))
    state = "running" if _accepts(host, port) else "starting (not accepting connections yet)"
    print(f"{state}: pid {pid}, {host}:{port}, warehouse {info.get('warehouse', '?')}")
    print(f"  sign-in {info.get('auth', '?')}, {'TLS' if info.get('tls') else 'no TLS'}, catalog {info.get('catalog_detail', '?')}")
    print(f"  read-only: {', '.join(info.get('read_only') or []) or '?'}; writable: {info.get('writable', '?')}")
    print(f"  since {info.get('started_at', '?')}, log {info.get('log', log_file(port))}")
    print(f"  {info.get('jdbc_url') or jdbc_url(host, port)}")
    return 0


def add_user(settings: Settings, name: str | None) -> int:
    """`lakehouse thrift add-user NAME`: add or replace a user of thrift.password_file (password asked, or piped)."""
    if not name:
        raise LakehouseError("add-user needs a user name: lakehouse thrift add-user NAME")
    path = security.password_file(settings)
    security.check_user_name(name)
    replaced = security.add_user(path, name, security.read_new_password(name))
    _say(f"{'replaced' if replaced else 'added'} user {name} in {path}"
         + ("" if settings.thrift_auth == "password-file" else " (sign-in uses it when thrift.auth = password-file)"))
    if _running_pid(settings.thrift_port) is not None:
        _say("a running server reads the file on every sign-in: no restart needed")
    return 0


def cert(settings: Settings) -> int:
    """`lakehouse thrift cert`: a self-signed TLS keystore (keytool) for a test or a first setup."""
    store = security.keystore(settings)
    password = security.keystore_password("thrift cert")
    pem, truststore = security.make_cert(store, password, settings.thrift_host)
    _say(f"keystore {store} (self-signed for {settings.thrift_host}, localhost and 127.0.0.1, {security.CERT_DAYS} days)")
    _say(f"clients: certificate {pem} (PyHive, ODBC), truststore {truststore} (JDBC, password {security.TRUSTSTORE_PASSWORD})")
    _say(f"serve with: LAKEHOUSE_THRIFT_TLS=true LAKEHOUSE_THRIFT_KEYSTORE={store} lakehouse thrift start "
         f"(and {security.KEYSTORE_PASSWORD_ENV} set)")
    print(store)
    return 0


# ---------------------------------------------------------------------------------------- the server
def server_conf(settings: Settings, work: Path) -> dict[str, str]:
    """The project's Spark settings plus the catalog, HiveServer2's (port, bind address, binary transport, sign-in,
    TLS) and the endpoint's rules."""
    from lakehouse.session import metastore_conf, spark_conf

    # A long-lived server: C2, with the full JIT unless spark.driver_jit asks for `lean` (never C1 only, as for short runs).
    jit = "lean" if settings.spark_driver_jit == "lean" else "full"
    conf = spark_conf(dataclasses.replace(settings, spark_driver_jit=jit), f"lakehouse-thrift-{settings.thrift_port}")
    hive = {
        "hive.server2.thrift.port": str(settings.thrift_port),
        "hive.server2.thrift.bind.host": settings.thrift_host,
        "hive.server2.transport.mode": "binary",
        "hive.server2.enable.doAs": "false",
        # Scratch space and operation logs of this server only (defaults are shared under /tmp).
        "hive.exec.local.scratchdir": str(work / "scratch"),
        "hive.exec.scratchdir": str(work / "hive-scratch"),
        # One folder per session, as Hive's default has it: a closing session deletes its folder, and with one
        # shared folder a session opening at that moment failed ("Couldn't create directory .../resources").
        "hive.downloaded.resources.dir": str(work / "resources" / "${hive.session.id}_resources"),
        "hive.server2.logging.operation.log.location": str(work / "operation_logs"),
        "hive.querylog.location": str(work / "querylog"),
    }
    if settings.catalog == "memory":
        # Hive's session layer opens a metastore client when a JDBC session closes; without a database
        # of its own that lookup fails (and retries for ~20 s per closed connection). Spark's catalog
        # stays in memory: this Derby holds nothing.
        hive.update({"javax.jdo.option.ConnectionURL": "jdbc:derby:memory:lakehouse_thrift_sessions;create=true",
                     "datanucleus.schema.autoCreateAll": "true", "hive.metastore.schema.verification": "false"})
    elif settings.catalog == "embedded":
        metastore = embedded_metastore(settings)
        metastore.parent.mkdir(parents=True, exist_ok=True)
        conf.update(metastore_conf(settings, derby=metastore))
    hive.update(security.hive_conf(settings))
    conf.update({f"spark.hadoop.{k}": v for k, v in hive.items()})
    # Every JDBC session under the endpoint's rules: the write policy, paths refused, the settings guard
    # (lakehouse/endpoint/jvm/EndpointExtension.java); no `delta.`/path`` / `parquet.`/path`` tables.
    conf["spark.sql.extensions"] += f",{security.ENDPOINT_EXTENSION}"
    conf["spark.sql.runSQLOnFiles"] = "false"
    # A table an analyst creates without USING is a Delta table (the sandbox's only kind).
    conf["spark.sql.sources.default"] = "delta"
    # Delta answers min/max of a date column from its statistics with java.sql.Date, but the Thrift server's sessions
    # run with the java.time API (spark.sql.datetime.java8API.enabled): `SELECT max(play_date) FROM t`, which every dbt
    # incremental model asks, failed with a ClassCastException. Such queries read the data instead.
    conf["spark.databricks.delta.optimizeMetadataQuery.enabled"] = "false"
    security.require_jar()
    derby = f"-Dderby.system.home={work}"
    if "spark.driver.extraJavaOptions" in conf:
        conf["spark.driver.extraJavaOptions"] += f" {derby}"
    return conf


def _build_session(settings: Settings, work: Path) -> SparkSession:
    from pyspark.sql import SparkSession

    from lakehouse import session

    if not session.inside_spark_submit():
        session.check_java()
    builder = SparkSession.builder
    for key, value in server_conf(settings, work).items():
        builder = builder.config(key, value)
    if settings.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    session._check_delta_loaded(spark)
    return spark


def _register(spark: SparkSession, settings: Settings, known: set[str]) -> list[str]:
    """Register the tables of the warehouse not registered yet; their names."""
    from lakehouse import tables as T

    todo = [t for t in T.ALL_TABLES if t.qualified not in known]
    new = T.Warehouse(spark, settings).register(todo) if todo else []
    known.update(new)
    return new


def _warm_up(spark: SparkSession, settings: Settings, known: set[str]) -> None:
    """One query over JDBC from inside the server, so that the first client does not pay the cold start
    (Spark's and Delta's first query; Hive's session metastore, built when the first session closes)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    table = next((n for n in ("gold.songplays", *sorted(known)) if n in known), None)
    sql = f"SELECT count(*) FROM {table}" if table else "SELECT 1"
    started = time.monotonic()
    if settings.thrift_auth != "none" or settings.thrift_tls:
        # The server has no password or truststore of its own (and no secret goes into a JDBC URL that an
        # error could log): warm Spark and Delta in-process; the first client pays Hive's session setup.
        try:
            spark.sql(sql).collect()
        except Exception as exc:
            log.warning("warm-up query `%s` failed: %s", sql, str(exc).strip().splitlines()[0][:300])
        return
    try:
        conn = jvm.org.apache.hive.jdbc.HiveDriver().connect(
            jdbc_url(settings.thrift_host, settings.thrift_port), jvm.java.util.Properties())
        try:
            result = conn.createStatement().executeQuery(sql)
            result.next()
        finally:
            conn.close()
    except Exception as exc:
        log.warning("warm-up query `%s` failed: %s", sql, str(exc).strip().splitlines()[0][:300])
    else:
        log.info("warm-up query `%s` answered in %.1fs", sql, time.monotonic() - started)


def _spark_alive(spark: SparkSession) -> bool:
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    if proc is not None and proc.poll() is not None:
        return False
    try:
        return not spark.sparkContext._jsc.sc().isStopped()  # type: ignore[union-attr]
    except Exception:
        return False


def serve(settings: Settings) -> int:
    """Run the server in this process until SIGTERM/SIGINT (what `lakehouse thrift start` launches)."""
    work = work_dir(settings.thrift_port).resolve()
    for sub in WORK_SUBDIRS:
        (work / sub).mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # derby.log, metastore_db and friends land here, not where the operator stood
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    log.info("starting Spark (%s) for the Thrift server over %s", settings.spark_master, settings.warehouse)
    spark = _build_session(settings, work)
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    # Only this session is outside the rules (it registers the tables); every JDBC session is under them.
    jvm.sparkify.lakehouse.EndpointExtension.trust(spark._jsparkSession)
    jvm.sparkify.lakehouse.WritePolicy.configure(settings.thrift_auth, ",".join(settings.writers), getpass.getuser(),
                                                 ",".join(lakehouse_schemas()), spark.conf.get("spark.sql.warehouse.dir"))
    known: set[str] = set()
    _register(spark, settings, known)
    log.info("catalog %s: %d tables of the lakehouse: %s", catalog_description(settings), len(known),
             ", ".join(sorted(known)) or "none yet")
    log.info("write policy: %s read-only; writable: %s", ", ".join(lakehouse_schemas()), writable_description(settings))
    if stopping.is_set():
        spark.stop()
        return 0

    # HiveServer2's LDAP and CUSTOM providers read a fresh HiveConf, which sees system properties only. Hive
    # copies such properties into every session too, so the TLS keys (the keystore password) stay out: the
    # Thrift service reads those from the server's own configuration.
    for key, value in security.hive_conf(settings).items():
        if not key.startswith(security.TLS_SETTINGS_PREFIX):
            jvm.java.lang.System.setProperty(key, value)
    # As HiveThriftServer2.startWithSparkSession(session, exitOnError=true), with the settings guard in front of
    # every session (lakehouse/endpoint/jvm/GuardedThriftServer.java); if the Thrift service cannot listen, the JVM exits
    # (and so does this driver, below) instead of living on without a port.
    server = jvm.sparkify.lakehouse.GuardedThriftServer.start(spark._jsparkSession)
    log.info("HiveThriftServer2 listening on %s:%d (sign-in %s, %s): %s", settings.thrift_host,
             settings.thrift_port, settings.thrift_auth, "TLS" if settings.thrift_tls else "no TLS",
             jdbc_url(settings.thrift_host, settings.thrift_port, security.jdbc_params(settings)))

    _warm_up(spark, settings, known)
    interval = _env_float("LAKEHOUSE_THRIFT_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS)
    next_refresh = time.monotonic() + interval
    while not stopping.wait(min(interval, 5.0)):
        if not _spark_alive(spark):
            log.error("Spark stopped under the Thrift server (see the lines above): exiting")
            return 1
        if time.monotonic() < next_refresh:
            continue
        next_refresh = time.monotonic() + interval
        try:
            for name in _register(spark, settings, known):
                log.info("registered %s (new table)", name)
        except Exception as exc:  # a flaky store must not take the server down
            log.warning("re-registering the tables failed: %s", str(exc).strip().splitlines()[0][:300])
    with contextlib.suppress(Exception):
        server.stop()
    with contextlib.suppress(Exception):
        spark.stop()
    log.info("stopped")
    return 0


def _serve_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {SERVE_MODULE}")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("serve", help="run the Thrift server in the foreground (what `lakehouse thrift start` runs)")
    p.add_argument("--env")
    p.add_argument("--warehouse")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s lakehouse.thrift: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.ERROR)
    try:
        settings = load_settings(args.env, {"warehouse": args.warehouse, "thrift.host": args.host,
                                            "thrift.port": args.port})
        return serve(settings)
    except LakehouseError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(_serve_main(sys.argv[1:]))
