"""The SQL endpoint as a BI tool sees it: `lakehouse thrift start`, beeline and PyHive over JDBC/Thrift.

One server for the whole module (it takes a JVM of its own): started by the CLI on a free port over a small
warehouse, queried while a daily run lands a new day, stopped at the end (killed by pid if stop fails).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse.config import Settings
from lakehouse.generate import GenerateSpec, generate
from lakehouse.pipeline import Pipeline

from .helpers import LEAN_ENDPOINT, free_port

pytestmark = pytest.mark.e2e

LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli"]
SPEC = GenerateSpec(songs=40, users=8, days=2, events_per_day=200)


@dataclass
class Server:
    settings: Settings
    landing: Path
    warehouse: Path
    port: int
    env: dict[str, str]
    start: subprocess.CompletedProcess[str]
    time_aside: Path

    @property
    def run_dir(self) -> Path:
        return Path(self.env["LAKEHOUSE_RUN_DIR"])

    def cli(self, *args: str, timeout: int = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LAKEHOUSE, *args], capture_output=True, text=True, timeout=timeout, env=self.env)

    def thrift(self, action: str, port: int | None = None) -> subprocess.CompletedProcess[str]:
        return self.cli("thrift", action, "--port", str(port or self.port), "--warehouse", str(self.warehouse))

    def connect(self):  # a PyHive DB-API connection
        hive = pytest.importorskip("pyhive.hive", reason="PyHive is a dev extra: pip install -e '.[dev]'")
        return hive.connect(host="127.0.0.1", port=self.port, database="default")

    def query(self, sql: str) -> list[tuple]:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(sql)
            return list(cur.fetchall())
        finally:
            conn.close()

    def restore_time_table(self) -> None:
        """Put gold/time back where the pipeline (and the server) expect it."""
        if self.time_aside.exists():
            self.time_aside.rename(self.warehouse / "gold" / "time")


def _kill_by_pid_file(run_dir: Path, port: int) -> None:
    pid_file = run_dir / f"{port}.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pid_file.read_text().split()[0])
        os.killpg(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def server(spark, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("thrift")
    landing, warehouse = root / "landing", root / "warehouse"
    generate(landing, SPEC)
    settings = dataclasses.replace(base_settings, source=f"file:{landing}", warehouse=f"file:{warehouse}")
    Pipeline(spark, settings).run("incremental")
    # gold.time stays out of sight until the server runs: it stands for a table a later run creates.
    time_aside = root / "time-aside"
    (warehouse / "gold" / "time").rename(time_aside)

    port = free_port()
    env = {
        **os.environ,
        **LEAN_ENDPOINT,
        "COLUMNS": "200",
        "LAKEHOUSE_RUN_DIR": str(root / "run"),
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
        "LAKEHOUSE_SPARK_SHUFFLE_PARTITIONS": "2",
        "LAKEHOUSE_THRIFT_REFRESH_SECONDS": "2",
    }
    srv = Server(settings, landing, warehouse, port, env, subprocess.CompletedProcess([], 0), time_aside)
    try:
        srv.start = srv.thrift("start")
        yield srv
    finally:
        stopped = srv.thrift("stop")
        if stopped.returncode != 0 or (srv.run_dir / f"{port}.pid").exists():
            _kill_by_pid_file(srv.run_dir, port)
        srv.restore_time_table()


def _count(spark, server: Server, table: str, **options: object) -> int:
    reader = spark.read.format("delta")
    for key, value in options.items():
        reader = reader.option(key, value)
    return int(reader.load(f"{server.settings.warehouse}/{table.replace('.', '/')}").count())


def _one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    """Exit 2 and one `error:` message (the CLI's console may fold a long one at 150 columns)."""
    assert proc.returncode == 2, proc.stderr
    assert sum(ln.startswith("error:") for ln in proc.stderr.splitlines()) == 1, proc.stderr
    message = " ".join(proc.stderr[proc.stderr.index("error:"):].split())
    assert all(f in message for f in fragments), proc.stderr
    assert "Traceback" not in proc.stderr


def test_start_prints_the_jdbc_url_and_status_reports_the_server(server: Server) -> None:
    assert server.start.returncode == 0, server.start.stderr + _log_tail(server)
    assert server.start.stdout.strip() == f"jdbc:hive2://127.0.0.1:{server.port}/default"
    pid = int((server.run_dir / f"{server.port}.pid").read_text())
    status = server.thrift("status")
    assert status.returncode == 0, status.stderr
    assert f"pid {pid}" in status.stdout and f"127.0.0.1:{server.port}" in status.stdout
    assert f"warehouse file:{server.warehouse}" in status.stdout
    text = " ".join(status.stdout.split())
    assert f"catalog embedded (Derby in {server.warehouse}/_system/metastore)" in text, text
    assert f"writable: analytics, analytics_* by the local user {getpass.getuser()}; no dev_<user> schemas without sign-in" in text


def test_beeline_reads_gold(spark, server: Server) -> None:
    proc = _beeline(f"jdbc:hive2://127.0.0.1:{server.port}/default", "-e", "SELECT count(*) AS n FROM gold.songplays")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    numbers = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip().isdigit()]
    assert numbers and int(numbers[-1]) == _count(spark, server, "gold.songplays") > 0, proc.stdout


def test_pyhive_counts_and_time_travel(spark, server: Server) -> None:
    from delta.tables import DeltaTable

    plays = _count(spark, server, "gold.songplays")
    assert server.query("SELECT count(*) FROM gold.songplays") == [(plays,)]
    users = {r["level"]: r["count"] for r in
             spark.read.format("delta").load(f"{server.settings.warehouse}/gold/users").groupBy("level").count().collect()}
    assert dict(server.query("SELECT level, count(*) FROM gold.users GROUP BY level")) == users
    assert server.query("SELECT count(*) FROM gold.songplays VERSION AS OF 0") == [(0,)]
    history = DeltaTable.forPath(spark, f"{server.settings.warehouse}/gold/songplays").history()
    latest = history.orderBy("version", ascending=False).first()
    assert latest is not None
    at = latest["timestamp"].strftime("%Y-%m-%d %H:%M:%S.%f")
    assert server.query(f"SELECT count(*) FROM gold.songplays TIMESTAMP AS OF '{at}'") == [(plays,)]


def test_sessions_opening_together_after_others_closed_all_open(server: Server) -> None:
    """dbt opens one session per thread. Hive deletes a closed session's folder for downloaded resources; with
    one folder shared by all sessions, two sessions opening together after a close raced to create it and
    one failed ("Couldn't create directory .../resources"). Closing a session also loads Hive's function registry,
    which needs hive-llap-common (`deps.STANDALONE_PACKAGES`): without it the NoClassDefFoundError killed the Thrift
    thread of a session opening at that moment ("TSocket read 0 bytes")."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    threads, rounds = 6, 8
    together = threading.Barrier(threads)

    def open_together(_: int) -> list[str]:
        failures = []
        for _round in range(rounds):
            together.wait(timeout=60)  # every session of the last round has closed: all open at once
            try:
                server.connect().close()
            except Exception as exc:
                failures.append(str(exc)[:300])
        return failures

    with ThreadPoolExecutor(max_workers=threads) as pool:
        failures = [f for fs in pool.map(open_together, range(threads)) for f in fs]
    assert not failures, failures[:3]
    assert server.query("SELECT 1") == [(1,)]
    log = (server.run_dir / f"{server.port}.log").read_text(errors="replace")
    assert "NoClassDefFoundError" not in log, _log_tail(server)


def test_hives_function_registry_loads(spark) -> None:
    """The endpoint's session close loads it (see above); it must load on the classpath `make setup` built."""
    jvm = spark._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    registry = jvm.java.lang.Class.forName("org.apache.hadoop.hive.ql.exec.FunctionRegistry", True, loader)
    assert registry.getName().endswith("FunctionRegistry")


def test_a_table_created_after_start_shows_up(spark, server: Server) -> None:
    errors: list[str] = []
    with pytest.raises(Exception, match=r"TABLE_OR_VIEW_NOT_FOUND"):
        server.query("SELECT count(*) FROM gold.time")
    server.restore_time_table()
    expected = _count(spark, server, "gold.time")
    deadline = time.monotonic() + 60
    while True:
        try:
            assert server.query("SELECT count(*) FROM gold.time") == [(expected,)]
            break
        except AssertionError:
            raise
        except Exception as exc:  # not registered yet (refresh every 2 s here, 30 s by default)
            errors.append(str(exc)[:200])
            assert time.monotonic() < deadline, errors[-1]
            time.sleep(1)


def test_every_silver_and_gold_change_feed_is_readable_and_writes_are_refused(spark, server: Server) -> None:
    from lakehouse import tables as T

    server.restore_time_table()
    feeds = [t for t in T.ALL_TABLES if t.layer in ("silver", "gold")]
    assert all(t.change_feed for t in feeds)
    expected = {t.qualified: _count(spark, server, t.qualified, readChangeFeed="true", startingVersion=0) for t in feeds}
    sql = " UNION ALL ".join(f"SELECT '{t}' AS t, count(*) AS n FROM table_changes('{t}', 0)" for t in expected)
    assert dict(server.query(sql)) == expected
    with pytest.raises(Exception, match=r"this SQL endpoint refused DROP TABLE on gold\.songplays: gold is the lakehouse's"):
        server.query("DROP TABLE gold.songplays")
    assert server.query("SELECT count(*) FROM gold.songplays") == [(_count(spark, server, "gold.songplays"),)]


def test_a_daily_run_while_serving_is_visible_without_restart(spark, server: Server) -> None:
    server.restore_time_table()
    before = server.query("SELECT count(*) FROM gold.songplays")[0][0]
    generate(server.landing, dataclasses.replace(SPEC, days=3))  # days 1-2 byte-identical, day 3 new
    report = Pipeline(spark, server.settings).run("incremental")
    assert report.status == "succeeded" and report.sources["log_data"].files == 1
    after = _count(spark, server, "gold.songplays")
    assert after > before
    assert server.query("SELECT count(*) FROM gold.songplays") == [(after,)]


# ---------------------------------------------------------------------------------------- side doors
# The settings a client sends when its session opens reach the Spark session without any SET statement.
# Each of these reopened path access before the settings guard (lakehouse/jvm/SettingsPolicy.java).
OPEN_DOORS = {
    "hiveconf": "set:hiveconf:spark.sql.runSQLOnFiles",
    "hivevar": "set:hivevar:spark.sql.runSQLOnFiles",
    "mixed case": "set:hiveconf:Spark.SQL.RunSqlOnFiles",
    "plain key": "spark.sql.runSQLOnFiles",
}
SECRET = "sparkify-secret-line"


@pytest.fixture(scope="module")
def outside(spark, server: Server) -> dict[str, str]:
    """A file of each format the endpoint must never serve, outside the warehouse: format -> path."""
    root = server.landing.parent / "outside"
    root.mkdir()
    (root / "secret.txt").write_text(SECRET + "\n")
    (root / "secret.json").write_text(json.dumps({"line": SECRET}) + "\n")
    (root / "secret.csv").write_text(f"line\n{SECRET}\n")
    rows = spark.createDataFrame([(SECRET,)], "line string")
    rows.write.parquet(str(root / "secret.parquet"))
    rows.write.format("delta").option("delta.enableChangeDataFeed", "true").save(str(root / "secret.delta"))
    return {"text": f"{root}/secret.txt", "json": f"{root}/secret.json", "csv": f"{root}/secret.csv",
            "parquet": f"{root}/secret.parquet", "binaryFile": f"{root}/secret.txt", "delta": f"{root}/secret.delta"}


def _connect(server: Server, configuration: dict[str, str]):
    from pyhive import hive

    return hive.connect(host="127.0.0.1", port=server.port, username="analyst", configuration=configuration)


@pytest.mark.parametrize("fmt", ["text", "json", "csv", "parquet", "binaryFile", "delta"])
@pytest.mark.parametrize("door", sorted(OPEN_DOORS))
def test_settings_sent_at_session_open_cannot_reopen_path_access(server: Server, outside: dict[str, str], door: str, fmt: str) -> None:
    key = OPEN_DOORS[door]
    try:
        conn = _connect(server, {key: "true"})
    except Exception as exc:
        message = str(exc)
    else:  # the session opened: whatever the query returns, the door was open
        rows: object = "(no rows)"
        with contextlib.suppress(Exception):
            cur = conn.cursor()
            cur.execute(f"SELECT * FROM {fmt}.`{outside[fmt]}`")
            rows = cur.fetchall()
        conn.close()
        pytest.fail(f"a session opened with {key}=true ({fmt}: {str(rows)[:200]})")
    assert "this SQL endpoint refused the session: a session may not set" in message, message[:500]
    assert f"(sent as `{key}` when the session opened)" in message and "spark.sql.session.timeZone" in message
    assert SECRET not in message
    assert "session of user 'analyst' from 127.0.0.1 refused" in (server.run_dir / f"{server.port}.log").read_text()


def test_catalogs_system_properties_and_hadoop_settings_are_refused_at_open(server: Server) -> None:
    refused = {
        "set:hiveconf:spark.sql.catalog.evil": "org.apache.spark.sql.execution.datasources.v2.jdbc.JDBCTableCatalog",
        "set:hivevar:spark.sql.catalog.spark_catalog": "org.apache.spark.sql.execution.datasources.v2.jdbc.JDBCTableCatalog",
        "set:system:lakehouse.thrift.password_file": "/tmp/attacker-users",
        "SET:SYSTEM:user.home": "/tmp",
        "set:metaconf:hive.metastore.uris": "thrift://127.0.0.1:1",
        "set:hiveconf:spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:1",
        "set:hiveconf:fs.file.impl": "org.apache.hadoop.fs.RawLocalFileSystem",
        "use:database": "gold; DROP TABLE gold.songplays",
    }
    for key, value in refused.items():
        with pytest.raises(Exception, match="this SQL endpoint refused the session") as info:
            _connect(server, {key: value})
        assert value not in str(info.value) or key == "use:database", key  # the value never echoes back


def test_paths_are_refused_by_what_the_plan_reads(server: Server, outside: dict[str, str]) -> None:
    """Ways to a path that never ask spark.sql.runSQLOnFiles: a path-based change feed and Delta's path commands."""
    conn = _connect(server, {})
    try:
        for sql in (f"SELECT * FROM table_changes_by_path('{outside['delta']}', 0)",
                    f"DESCRIBE HISTORY '{outside['delta']}'",
                    f"DESCRIBE DETAIL '{outside['delta']}'",
                    f"SELECT * FROM delta.`{outside['delta']}`",
                    f"SELECT * FROM parquet.`{outside['parquet']}`",
                    f"SELECT * FROM gold.songplays WHERE song_id IN (SELECT value FROM text.`{outside['text']}`)"):
            with pytest.raises(Exception, match="this SQL endpoint serves the registered tables only") as info:
                query(conn, sql)
            assert SECRET not in str(info.value), sql
        # the registered tables, their change feeds and their history by name still work
        assert query(conn, "SELECT count(*) FROM table_changes('gold.songplays', 0) WHERE _change_type = 'insert'")[0][0] > 0
        assert query(conn, "DESCRIBE HISTORY gold.songplays")
    finally:
        conn.close()


def test_set_changes_only_what_an_analyst_may_change(server: Server) -> None:
    conn = _connect(server, {})
    try:
        for key in ("spark.sql.runSQLOnFiles", "SPARK.SQL.RUNSQLONFILES", "spark.sql.catalog.evil", "spark.hadoop.fs.s3a.endpoint"):
            with pytest.raises(Exception, match=re.escape(f"this SQL endpoint does not let a session set {key}")):
                query(conn, f"SET {key}=true")
        with pytest.raises(Exception, match=r"does not let a session set spark\.sql\.runSQLOnFiles"):
            query(conn, "EXECUTE IMMEDIATE 'SET spark.sql.runSQLOnFiles=true'")
        query(conn, "SET spark.sql.ansi.enabled=false")
        assert query(conn, "SELECT 1/0") == [(None,)]
        assert query(conn, "SET spark.sql.runSQLOnFiles") == [("spark.sql.runSQLOnFiles", "false")]
    finally:
        conn.close()


def test_ordinary_settings_and_variables_still_work_at_open(server: Server) -> None:
    conn = _connect(server, {"set:hiveconf:spark.sql.ansi.enabled": "false", "set:hiveconf:spark.sql.session.timeZone": "Asia/Tokyo",
                             "set:hivevar:min_plays": "1"})
    try:
        assert query(conn, "SELECT 1/0, current_timezone()") == [(None, "Asia/Tokyo")]
        assert query(conn, "SELECT count(*) >= ${min_plays} FROM gold.songplays") == [(True,)]
    finally:
        conn.close()


def test_beeline_url_settings_go_through_the_same_guard(server: Server, outside: dict[str, str]) -> None:
    url = f"jdbc:hive2://127.0.0.1:{server.port}/default"
    for suffix in (";?spark.sql.runSQLOnFiles=true", ";#spark.sql.runSQLOnFiles=true"):
        proc = _beeline(url + suffix, "-e", f"SELECT * FROM text.`{outside['text']}`")
        assert proc.returncode != 0 and SECRET not in proc.stdout, proc.stdout
        assert "this SQL endpoint refused the session: a session may not set spark.sql.runSQLOnFiles" in proc.stdout + proc.stderr
    proc = _beeline(url + ";?spark.sql.session.timeZone=Asia/Tokyo", "-e", "SELECT current_timezone() AS tz")
    assert proc.returncode == 0 and "Asia/Tokyo" in proc.stdout, proc.stdout + proc.stderr


def query(conn, sql: str) -> list[tuple]:
    cur = conn.cursor()
    cur.execute(sql)
    return list(cur.fetchall())


def _beeline(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    import pyspark

    exe = Path(pyspark.__file__).parent / "bin" / "beeline"
    return subprocess.run([str(exe), "-u", url, "--silent=true", "--outputformat=csv2", *args],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def test_start_fails_in_one_line_when_the_port_is_taken(server: Server) -> None:
    _one_line_error(server.thrift("start"), f"already runs on port {server.port}")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        _one_line_error(server.thrift("start", port), f"port {port} on 127.0.0.1 is already in use")
    assert not (server.run_dir / f"{port}.pid").exists() and not (server.run_dir / f"{port}.log").exists()


def test_a_server_that_dies_during_start_is_a_one_line_error_pointing_at_its_log(server: Server, tmp_path: Path) -> None:
    port = free_port()
    # The server's Spark cannot find its jars; a catalog in memory, so the running server's embedded one is not in the way.
    env = {**server.env, "LAKEHOUSE_JARS_DIR": str(tmp_path), "LAKEHOUSE_CATALOG": "memory"}
    proc = subprocess.run([*LAKEHOUSE, "thrift", "start", "--port", str(port), "--warehouse", str(server.warehouse)],
                          capture_output=True, text=True, timeout=120, env=env)
    _one_line_error(proc, "exited during start", "make setup", str(server.run_dir / f"{port}.log"))
    assert not (server.run_dir / f"{port}.pid").exists()


# ---------------------------------------------------------------------------------------- the sandbox, the catalog
def test_without_sign_in_the_local_user_writes_analytics_and_no_dev_schema(server: Server) -> None:
    """A dbt project on a laptop: thrift.auth = none on 127.0.0.1, so every session is the server's local user."""
    local = getpass.getuser()
    conn = _connect(server, {})
    try:
        query(conn, "CREATE SCHEMA IF NOT EXISTS analytics")
        query(conn, "CREATE OR REPLACE TABLE analytics.levels AS SELECT level, count(*) AS users FROM gold.users GROUP BY level")
        query(conn, "CREATE OR REPLACE VIEW analytics.paid AS SELECT * FROM analytics.levels WHERE level = 'paid'")
        with pytest.raises(Exception, match=rf"refused CREATE SCHEMA on schema dev_analyst: dev_<user> schemas belong to a signed-in "
                                            rf"user, and this endpoint has no sign-in \(thrift.auth = none\); the local user {local} "
                                            r"\(thrift.auth = none\) may write analytics, analytics_\*"):
            query(conn, "CREATE SCHEMA dev_analyst")
    finally:
        conn.close()
    assert server.query("SELECT users FROM analytics.paid") == server.query("SELECT count(*) FROM gold.users WHERE level = 'paid'")


def test_stop_then_status_reports_not_running(server: Server) -> None:
    pid = int((server.run_dir / f"{server.port}.pid").read_text())
    stopped = server.thrift("stop")
    assert stopped.returncode == 0 and f"pid {pid}" in stopped.stderr, stopped.stderr
    assert not (server.run_dir / f"{server.port}.pid").exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0
    status = server.thrift("status")
    assert status.returncode == 1 and "not running" in status.stdout
    assert server.thrift("stop").returncode == 0  # stopping twice is fine


def _log_tail(server: Server) -> str:
    log = server.run_dir / f"{server.port}.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else "(no log)"



def test_the_embedded_catalog_keeps_the_analysts_objects_after_the_server_stopped(spark, server: Server, tmp_path: Path) -> None:
    """What a restart reads: the Derby metastore under the warehouse holds the analysts' view and table and the
    lakehouse's entries once the server is gone (tests/e2e/test_dbt.py restarts a server on a PostgreSQL one)."""
    assert server.thrift("stop").returncode == 0
    jvm = spark.sparkContext._jvm
    jvm.java.lang.System.setProperty("derby.stream.error.file", str(tmp_path / "derby.log"))
    url = f"jdbc:derby:{server.warehouse}/_system/metastore"
    conn = jvm.org.apache.derby.jdbc.EmbeddedDriver().connect(url, jvm.java.util.Properties())
    try:
        rows = conn.createStatement().executeQuery(
            'SELECT d."NAME", t."TBL_NAME", t."TBL_TYPE" FROM "APP"."TBLS" t JOIN "APP"."DBS" d ON d."DB_ID" = t."DB_ID"')
        entries = set()
        while rows.next():
            entries.add((rows.getString(1), rows.getString(2), rows.getString(3)))
    finally:
        conn.close()
        with contextlib.suppress(Exception):  # Derby says "shut down" with an exception
            jvm.org.apache.derby.jdbc.EmbeddedDriver().connect(url + ";shutdown=true", jvm.java.util.Properties())
    assert {("analytics", "paid", "VIRTUAL_VIEW"), ("analytics", "levels", "MANAGED_TABLE"),
            ("gold", "songplays", "EXTERNAL_TABLE")} <= entries, entries
