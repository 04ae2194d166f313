"""The SQL endpoint for a team: sign-in (password file, LDAP), TLS, the lakehouse's tables read-only, change feeds.

Real servers only: two Thrift servers started by the CLI (password-file sign-in over TLS; LDAP sign-in
against a throwaway slapd on 127.0.0.1), queried by beeline and PyHive. The warehouse is one small
gold.users table with four versions (create, insert 3 rows, update one, delete one), so its change
feed holds every kind of change. Both servers start once for the module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse import tables as T
from lakehouse.config import Settings

from .helpers import LEAN_ENDPOINT, cli_in_process, free_port, pyhive, query
from .ldapserver import slapd_server

pytestmark = pytest.mark.e2e

LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli"]
KEYSTORE_PASSWORD = "test-keystore-secret"
USERS = [(1, "Ada", "Byron", "F", "free"), (2, "Bob", "Dylan", "M", "free"), (3, "Cy", "Twombly", "M", "paid")]
WRITES = {
    "INSERT": "INSERT INTO gold.users VALUES (9, 'Eve', 'X', 'F', 'paid')",
    "DELETE": "DELETE FROM gold.users WHERE user_id = 1",
    "UPDATE": "UPDATE gold.users SET level = 'paid'",
    "MERGE": "MERGE INTO gold.users t USING gold.users s ON t.user_id = s.user_id WHEN MATCHED THEN DELETE",
    "DROP": "DROP TABLE gold.users",
    "TRUNCATE": "TRUNCATE TABLE gold.users",
    "CREATE over the table's files": "CREATE TABLE gold.mine USING delta LOCATION '{path}'",
    "INSERT by path": "INSERT INTO delta.`{path}` VALUES (9, 'Eve', 'X', 'F', 'paid')",
    "DELETE by path": "DELETE FROM delta.`{path}`",
    "path access switched back on": "SET spark.sql.runSQLOnFiles=true",
    "a shell command": "SELECT TRANSFORM(user_id) USING 'rm -rf /' FROM gold.users",
}


@dataclass
class Endpoint:
    port: int
    env: dict[str, str]
    start: subprocess.CompletedProcess[str]

    @property
    def jdbc_url(self) -> str:
        return self.start.stdout.strip()

    def log(self) -> str:
        path = Path(self.env["LAKEHOUSE_RUN_DIR"]) / f"{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class Site:
    root: Path
    settings: Settings
    env: dict[str, str]
    users_path: Path
    keystore: Path
    versions: int

    def cli(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: int = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LAKEHOUSE, *args], capture_output=True, text=True, timeout=timeout,
                              env=env or self.env, input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)

    @property
    def table_path(self) -> str:
        return self.settings.table_path("gold", "users").removeprefix("file:")


@pytest.fixture(scope="module")
def site(spark, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Site:
    """gold.users at version 3 (insert 3, update user 2, delete user 3); a keystore and a password file."""
    from delta.tables import DeltaTable

    root = tmp_path_factory.mktemp("endpoint")
    settings = dataclasses.replace(base_settings, warehouse=f"file:{root / 'warehouse'}")
    wh = T.Warehouse(spark, settings)
    wh.append(T.GOLD_USERS, spark.createDataFrame(USERS, T.GOLD_USERS.schema))
    table = DeltaTable.forPath(spark, wh.path(T.GOLD_USERS))
    table.update("user_id = 2", {"level": "'paid'"})
    table.delete("user_id = 3")
    secrets_dir = root / "secrets"  # stands for a folder outside the repository, e.g. /etc/lakehouse
    env = {
        **os.environ,
        **LEAN_ENDPOINT,
        "COLUMNS": "200",
        "LAKEHOUSE_RUN_DIR": str(root / "run"),
        "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g",
        "LAKEHOUSE_SPARK_SHUFFLE_PARTITIONS": "2",
        "LAKEHOUSE_WAREHOUSE": str(root / "warehouse"),
        "LAKEHOUSE_THRIFT_PASSWORD_FILE": str(secrets_dir / "thrift-users"),
        "LAKEHOUSE_THRIFT_KEYSTORE": str(secrets_dir / "thrift.p12"),
        "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD,
        # Two endpoints on one warehouse: catalogs in memory (an embedded one admits one process; test_thrift has it).
        "LAKEHOUSE_CATALOG": "memory",
    }
    for name in ("LAKEHOUSE_THRIFT_AUTH", "LAKEHOUSE_THRIFT_TLS", "LAKEHOUSE_THRIFT_HOST", "LAKEHOUSE_ENV"):
        env.pop(name, None)
    return Site(root, settings, env, secrets_dir / "thrift-users", secrets_dir / "thrift.p12", wh.version(T.GOLD_USERS))


def _kill(endpoint_env: dict[str, str], port: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        pid = int((Path(endpoint_env["LAKEHOUSE_RUN_DIR"]) / f"{port}.pid").read_text().split()[0])
        os.killpg(pid, signal.SIGKILL)


@contextlib.contextmanager
def _endpoint(site: Site, env: dict[str, str], *flags: str) -> Iterator[Endpoint]:
    port = free_port()
    started = site.cli("thrift", "start", "--port", str(port), *flags, env=env)
    endpoint = Endpoint(port, env, started)
    try:
        assert started.returncode == 0, started.stderr + endpoint.log()[-3000:]
        yield endpoint
    finally:
        stopped = site.cli("thrift", "stop", "--port", str(port), env=env)
        if stopped.returncode != 0:
            _kill(env, port)


@pytest.fixture(scope="module")
def tls_endpoint(site: Site) -> Iterator[Endpoint]:
    """Password-file sign-in over TLS: `thrift cert`, `thrift add-user` (piped), `thrift start --auth password-file --tls`."""
    made = site.cli("thrift", "cert")
    assert made.returncode == 0, made.stderr
    for name, password in (("ana", "ana-s3cret"), ("bo", "bo-pass-1")):
        added = site.cli("thrift", "add-user", name, stdin=password + "\n")
        assert added.returncode == 0 and f"added user {name}" in added.stderr, added.stderr
    with _endpoint(site, site.env, "--auth", "password-file", "--tls") as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def ldap_endpoint(site: Site) -> Iterator[Endpoint]:
    with slapd_server(site.root / "ldap", {"lena": "lena-ldap-pass"}) as directory:
        env = {**site.env, "LAKEHOUSE_THRIFT_LDAP_URL": directory.url, "LAKEHOUSE_THRIFT_LDAP_BASE_DN": directory.base_dn}
        with _endpoint(site, env, "--auth", "ldap") as endpoint:
            yield endpoint


# ---------------------------------------------------------------------------------------- clients
def beeline(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    import pyspark

    exe = Path(pyspark.__file__).parent / "bin" / "beeline"
    return subprocess.run([str(exe), "-u", url, "--silent=true", "--outputformat=csv2", *args],
                          capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)


def _cert(site: Site) -> Path:
    return site.keystore.with_name("thrift-cert.pem")


def _numbers(text: str) -> list[int]:
    return [int(ln.strip()) for ln in text.splitlines() if ln.strip().isdigit()]


def _error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    return " ".join(proc.stderr[proc.stderr.index("error:"):].split())


# ---------------------------------------------------------------------------------------- operator errors
def test_start_refuses_unsafe_or_incomplete_settings_in_one_line(site: Site, tls_endpoint: Endpoint) -> None:
    port = str(free_port())
    wrong_password = {**site.env, "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD": "not-the-password"}
    no_password = {k: v for k, v in site.env.items() if k != "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD"}
    cases = [
        ((), {**site.env, "LAKEHOUSE_THRIFT_AUTH": "kerberos"}, "thrift.auth 'kerberos' is not one of none, password-file, ldap"),
        (("--host", "0.0.0.0"), site.env, "not a loopback address and thrift.auth is none: refusing to serve without sign-in"),
        (("--auth", "password-file", "--password-file", str(site.root / "nowhere" / "users")), site.env, "does not exist"),
        (("--auth", "ldap"), site.env, "thrift.ldap_url is empty"),
        (("--tls", "--keystore", str(site.root / "missing.p12")), site.env, "does not exist (make one with `lakehouse thrift cert"),
    ]
    cases += [
        (("--tls",), wrong_password, "cannot open it with LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD"),
        (("--tls",), no_password, "set the keystore password in the environment variable"),
    ]
    for flags, env, message in cases:
        proc = subprocess.run([*LAKEHOUSE, "thrift", "start", "--port", port, *flags], capture_output=True, text=True,
                              env=env, timeout=120, stdin=subprocess.DEVNULL)
        assert message in _error_line(proc), (flags, proc.stderr)
    assert not (Path(site.env["LAKEHOUSE_RUN_DIR"]) / f"{port}.pid").exists()
    again = site.cli("thrift", "cert")
    assert "already exists" in _error_line(again)


# ---------------------------------------------------------------------------------------- password file + TLS
def test_add_user_keeps_salted_hashes_outside_the_repo(site: Site, tls_endpoint: Endpoint) -> None:
    from lakehouse.endpoint.security import verify_password

    lines = [ln for ln in site.users_path.read_text().splitlines() if not ln.startswith("#")]
    entries = dict(ln.split(":", 1) for ln in lines)
    assert sorted(entries) == ["ana", "bo"]
    assert "s3cret" not in site.users_path.read_text()
    assert all(e.startswith("pbkdf2-sha256:600000:") for e in entries.values())
    assert verify_password(entries["ana"], "ana-s3cret") and not verify_password(entries["ana"], "bo-pass-1")
    assert stat.S_IMODE(site.users_path.stat().st_mode) == 0o600
    inside = site.cli("thrift", "add-user", "eve", "--password-file", str(Path(T.__file__).parent / "users"), stdin="pw\n")
    assert "is inside the project checkout" in _error_line(inside)


def test_beeline_with_the_certificate_signs_in_reads_and_cannot_drop(site: Site, tls_endpoint: Endpoint) -> None:
    assert ";ssl=true;sslTrustStore=" in tls_endpoint.jdbc_url, tls_endpoint.start.stdout
    proc = beeline(tls_endpoint.jdbc_url, "-n", "ana", "-p", "ana-s3cret",
                   "-e", "SELECT count(*) AS n FROM gold.users VERSION AS OF 1; DROP TABLE gold.users;")
    assert _numbers(proc.stdout) == [3], proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "this SQL endpoint refused DROP TABLE on gold.users: gold is the lakehouse's" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_wrong_password_and_unknown_user_are_refused(site: Site, tls_endpoint: Endpoint) -> None:
    proc = beeline(tls_endpoint.jdbc_url, "-n", "ana", "-p", "wrong", "-e", "SELECT 1")
    assert proc.returncode != 0 and "Error validating the login" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    with pytest.raises(Exception, match="Error validating the login"):
        pyhive(tls_endpoint.port, "nobody", "ana-s3cret", _cert(site))
    log = tls_endpoint.log()
    assert "sign-in refused for user 'ana': wrong password" in log
    assert "sign-in refused for user 'nobody': unknown user" in log


def test_plain_text_clients_are_refused_by_the_tls_endpoint(site: Site, tls_endpoint: Endpoint) -> None:
    plain_url = f"jdbc:hive2://127.0.0.1:{tls_endpoint.port}/default"
    proc = beeline(plain_url, "-n", "ana", "-p", "ana-s3cret", "-e", "SELECT 1")
    assert proc.returncode != 0 and "Could not open client transport" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    with pytest.raises(Exception):  # noqa: B017 - the thrift/SASL layer raises its own types
        query(pyhive(tls_endpoint.port, "ana", "ana-s3cret", cafile=None), "SELECT 1")
    # and a client that does not trust the certificate does not connect either
    with pytest.raises(ssl.SSLError), socket.create_connection(("127.0.0.1", tls_endpoint.port)) as raw:
        ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1").close()


def test_pyhive_reads_time_travels_and_cannot_write(site: Site, tls_endpoint: Endpoint, spark) -> None:
    conn = pyhive(tls_endpoint.port, "bo", "bo-pass-1", _cert(site))
    try:
        assert query(conn, "SELECT user_id, level FROM gold.users ORDER BY user_id") == [(1, "free"), (2, "paid")]
        assert query(conn, "SELECT count(*) FROM gold.users VERSION AS OF 1") == [(3,)]
        rows = query(conn, "DESCRIBE HISTORY gold.users")
        assert sorted(r[0] for r in rows) == list(range(site.versions + 1))
        at = max(r[1] for r in rows if r[0] == 1).strftime("%Y-%m-%d %H:%M:%S.%f")
        assert query(conn, f"SELECT count(*) FROM gold.users TIMESTAMP AS OF '{at}'") == [(3,)]
        for what, sql in WRITES.items():
            with pytest.raises(Exception) as refused:
                query(conn, sql.format(path=site.table_path))
            message = str(refused.value)
            assert any(refusal in message for refusal in ("this SQL endpoint refused", "path access",
                                                          "this SQL endpoint does not let a session set")), (what, message[:500])
        assert query(conn, "SELECT count(*) FROM gold.users") == [(2,)]
    finally:
        conn.close()
    assert T.Warehouse(spark, site.settings).version(T.GOLD_USERS) == site.versions  # nothing was committed


def test_every_signed_in_user_writes_analytics_and_only_their_own_dev_schema(site: Site, tls_endpoint: Endpoint) -> None:
    bo, ana = pyhive(tls_endpoint.port, "bo", "bo-pass-1", _cert(site)), pyhive(tls_endpoint.port, "ana", "ana-s3cret", _cert(site))
    try:
        query(bo, "CREATE SCHEMA IF NOT EXISTS analytics")  # thrift.writers is empty: every signed-in user
        query(bo, "CREATE OR REPLACE TABLE analytics.levels AS SELECT level, count(*) AS n FROM gold.users GROUP BY level")
        query(bo, "CREATE SCHEMA IF NOT EXISTS dev_bo_scratch")
        query(bo, "CREATE OR REPLACE VIEW dev_bo_scratch.paid AS SELECT * FROM analytics.levels WHERE level = 'paid'")
        assert query(ana, "SELECT n FROM dev_bo_scratch.paid") == [(1,)]  # sandboxes are readable by everyone
        query(ana, "INSERT INTO analytics.levels VALUES ('trial', 0)")
        with pytest.raises(Exception, match=r"refused CREATE TABLE … AS SELECT on dev_bo_scratch.mine: dev_bo_scratch is not ana's: "
                                            r"dev_<user> and dev_<user>_\* are writable by that signed-in user alone; ana may write "
                                            r"analytics, analytics_\*, dev_ana, dev_ana_\*"):
            query(ana, "CREATE TABLE dev_bo_scratch.mine AS SELECT 1 AS a")
        assert query(bo, "SELECT count(*) FROM analytics.levels") == [(3,)]
    finally:
        bo.close()
        ana.close()


def test_signed_in_users_get_the_same_settings_guard_and_no_secret(site: Site, tls_endpoint: Endpoint) -> None:
    for key in ("set:hiveconf:spark.sql.runSQLOnFiles", "set:hivevar:spark.sql.runSQLOnFiles",
                "set:hiveconf:hive.server2.keystore.path", "set:system:lakehouse.thrift.password_file"):
        with pytest.raises(Exception, match="this SQL endpoint refused the session"):
            pyhive(tls_endpoint.port, "ana", "ana-s3cret", _cert(site), configuration={key: "/tmp/x"})
    conn = pyhive(tls_endpoint.port, "ana", "ana-s3cret", _cert(site), configuration={"set:hiveconf:spark.sql.session.timeZone": "Europe/Paris"})
    try:
        assert query(conn, "SELECT current_timezone()") == [("Europe/Paris",)]
        listed = str(query(conn, "SET")) + str(query(conn, "SET -v"))
        listed += str(query(conn, "SET spark.hadoop.hive.server2.keystore.password"))
        listed += str(query(conn, "SET hive.server2.keystore.password"))
        assert KEYSTORE_PASSWORD not in listed
    finally:
        conn.close()


def test_the_change_feed_is_a_query_away(site: Site, tls_endpoint: Endpoint) -> None:
    conn = pyhive(tls_endpoint.port, "ana", "ana-s3cret", _cert(site))
    try:
        rows = query(conn, "SELECT user_id, level, _change_type, _commit_version FROM table_changes('gold.users', 2) "
                           "ORDER BY _commit_version, _change_type")
    finally:
        conn.close()
    assert rows == [(2, "paid", "update_postimage", 2), (2, "free", "update_preimage", 2), (3, "paid", "delete", 3)]


# ---------------------------------------------------------------------------------------- LDAP
def test_ldap_sign_in_with_beeline_and_pyhive(ldap_endpoint: Endpoint) -> None:
    assert ldap_endpoint.jdbc_url == f"jdbc:hive2://127.0.0.1:{ldap_endpoint.port}/default"
    proc = beeline(ldap_endpoint.jdbc_url, "-n", "lena", "-p", "lena-ldap-pass", "-e", "SELECT count(*) FROM gold.users")
    assert proc.returncode == 0 and _numbers(proc.stdout) == [2], proc.stdout + proc.stderr
    conn = pyhive(ldap_endpoint.port, "lena", "lena-ldap-pass", auth="LDAP")
    try:
        assert query(conn, "SELECT count(*) FROM gold.users VERSION AS OF 1") == [(3,)]
        with pytest.raises(Exception, match=r"this SQL endpoint refused DELETE on gold\.users: gold is the lakehouse's"):
            query(conn, WRITES["DELETE"])
        query(conn, "CREATE SCHEMA IF NOT EXISTS dev_lena")  # her sandbox: LDAP's user name is the one signed in
        query(conn, "CREATE TABLE dev_lena.levels AS SELECT level, count(*) AS n FROM gold.users GROUP BY level")
        assert query(conn, "SELECT sum(n) FROM dev_lena.levels") == [(2,)]
    finally:
        conn.close()
    for user, password in (("lena", "not-it"), ("nobody", "lena-ldap-pass")):
        with pytest.raises(Exception, match="Error validating the login"):
            pyhive(ldap_endpoint.port, user, password, auth="LDAP")
    assert "Error validating LDAP user" in ldap_endpoint.log()


# ---------------------------------------------------------------------------------------- lakehouse changes / sql
def test_changes_prints_inserted_updated_deleted_rows_as_json(site: Site) -> None:
    # In-process on the suite's session (what it prints is the point); the process's own exit is checked below.
    proc = cli_in_process("changes", "gold.users", "--since-version", "1", "--format", "json", "--warehouse", site.settings.warehouse)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert [r["_commit_version"] for r in rows] == [1, 1, 1, 2, 3]  # oldest commit first
    assert sorted((r["_commit_version"], r["user_id"], r["level"], r["_change_type"]) for r in rows) == [
        (1, 1, "free", "insert"), (1, 2, "free", "insert"), (1, 3, "paid", "insert"),
        (2, 2, "paid", "update_postimage"), (3, 3, "paid", "delete"),
    ]
    assert all(r["_commit_timestamp"] for r in rows)
    assert f"next time: --since-version {site.versions + 1}" in " ".join(proc.stderr.split())
    runs = site.cli("changes", "ops.runs", "--since-version", "0")  # fails before Spark starts
    assert "ops.runs keeps no Change Data Feed" in _error_line(runs)


def test_changes_after_the_latest_version(site: Site, spark) -> None:
    from lakehouse.errors import ConfigError
    from lakehouse.operations import catalog

    wh = T.Warehouse(spark, site.settings)
    df, latest = catalog.changes(wh, T.GOLD_USERS, site.versions + 1)  # what a poller asks when nothing is new
    assert latest == site.versions and df.collect() == []
    with pytest.raises(ConfigError, match=f"gold.users is at version {site.versions}"):
        catalog.changes(wh, T.GOLD_USERS, site.versions + 2)

