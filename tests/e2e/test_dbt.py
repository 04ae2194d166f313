"""The SQL endpoint a team builds on: one PostgreSQL metastore for every JVM, the write policy, dbt end to end.

One PostgreSQL (the team's metastore, on 127.0.0.1) and one Thrift server (catalog = postgres, password sign-in over
TLS, `thrift.writers = ana`) for the module. The warehouse is built by `lakehouse run incremental` in a JVM of its own
on the same metastore: the pipeline registers each table once, when it creates it. dbt (dbt-core 1.11.5 with
dbt-spark 1.11, the tool environment `make setup` builds in .cache/dbt) builds user ana's project
(tests/e2e/dbt/sparkify_analytics: a seed, a view, a table and an incremental merge model, a custom schema, tests with
--store-failures, docs) twice in her sandbox `dev_ana` (`dbt build` runs seed, run and test in one process). Then bo
is refused her sandbox, models into gold are refused, the attacks of the write policy are refused one by one, the
server restarts with ana's models in place, and a daily run beside the server reaches her incremental model.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lakehouse import deps
from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.generate import GenerateSpec, generate
from lakehouse.pipeline import Pipeline

from .helpers import LEAN_ENDPOINT, free_port, pyhive, query
from .pgserver import Postgres, postgres_server

pytestmark = pytest.mark.e2e

LAKEHOUSE = [sys.executable, "-m", "lakehouse.cli"]
SPEC = GenerateSpec(songs=30, users=6, days=2, events_per_day=120)
PROJECT = Path(__file__).parent / "dbt" / "sparkify_analytics"
DBT = deps.CACHE_DIR / "dbt" / "bin" / "dbt"
PASSWORDS = {"ana": "ana-s3cret", "bo": "bo-pass-1"}
KEYSTORE_PASSWORD = "team-keystore-secret"
METASTORE_PASSWORD = "metastore-s3cret"
REFUSED = "this SQL endpoint refused"


@dataclass
class Team:
    root: Path
    settings: Settings  # the warehouse, for the suite's own Spark session
    env: dict[str, str]  # what the team's processes run with (catalog = postgres, sign-in, TLS)
    metastore: Postgres
    registered_by_the_pipeline: list[str]
    project: Path
    port: int = 0
    started: subprocess.CompletedProcess[str] | None = None

    @property
    def warehouse(self) -> Path:
        return Path(self.settings.warehouse.removeprefix("file:"))

    @property
    def cert(self) -> Path:
        return self.root / "secrets" / "thrift-cert.pem"

    def cli(self, *args: str, stdin: str | None = None, timeout: int = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*LAKEHOUSE, *args], capture_output=True, text=True, timeout=timeout, env={**self.env, **(env or {})},
                              input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)

    def thrift(self, action: str) -> subprocess.CompletedProcess[str]:
        flags = ("--auth", "password-file", "--tls") if action == "start" else ()
        proc = self.cli("thrift", action, "--port", str(self.port), *flags, env=LEAN_ENDPOINT)  # the pipeline's run keeps C1
        if action == "start":
            self.started = proc
            assert proc.returncode == 0, proc.stderr + self.log()[-3000:]
        return proc

    def log(self) -> str:
        path = Path(self.env["LAKEHOUSE_RUN_DIR"]) / f"{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def connect(self, user: str = "ana"):
        return pyhive(self.port, user, PASSWORDS[user], self.cert)

    def sql(self, statement: str, user: str = "ana") -> list[tuple]:
        conn = self.connect(user)
        try:
            return query(conn, statement)
        finally:
            conn.close()

    def dbt(self, *args: str, user: str = "ana", target: str = "ana") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_PASSWORD": PASSWORDS[user],
               "DBT_USER": user, "NO_COLOR": "1"}
        return subprocess.run([str(DBT), *args, "--project-dir", str(self.project), "--profiles-dir", str(self.project),
                               "--target", target], capture_output=True, text=True, timeout=600, env=env, cwd=self.project)


def _kill(team: Team) -> None:
    with contextlib.suppress(OSError, ValueError):
        pid = int((Path(team.env["LAKEHOUSE_RUN_DIR"]) / f"{team.port}.pid").read_text().split()[0])
        os.killpg(pid, signal.SIGKILL)


PROFILES = """\
# user ana's dbt profile for the team's SQL endpoint (the same as docs/sql-endpoint.md shows)
sparkify:
  target: ana
  outputs:
    ana: &ana
      type: spark
      method: thrift
      host: 127.0.0.1
      port: {port}
      user: "{{{{ env_var('DBT_USER') }}}}"
      password: "{{{{ env_var('DBT_PASSWORD') }}}}"
      auth: CUSTOM
      use_ssl: true
      schema: dev_ana
      threads: 2
      connect_retries: 0
    gold:             # a target into the lakehouse's own schema: refused
      <<: *ana
      schema: gold
"""


@pytest.fixture(scope="module")
def team(spark, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    if not DBT.exists():
        pytest.skip(f"{DBT} is built by `make setup` (the dbt tool environment)")
    root = tmp_path_factory.mktemp("team")
    landing, warehouse = root / "landing", root / "warehouse"
    generate(landing, SPEC)
    settings = dataclasses.replace(base_settings, source=f"file:{landing}", warehouse=f"file:{warehouse}")
    with postgres_server("metastore", "hive", METASTORE_PASSWORD) as metastore:
        env = {
            **os.environ, "COLUMNS": "200",
            "LAKEHOUSE_RUN_DIR": str(root / "run"), "LAKEHOUSE_SPARK_DRIVER_MEMORY": "1g", "LAKEHOUSE_SPARK_SHUFFLE_PARTITIONS": "2",
            "LAKEHOUSE_SOURCE": str(landing), "LAKEHOUSE_WAREHOUSE": str(warehouse),
            "LAKEHOUSE_CATALOG": "postgres", "LAKEHOUSE_METASTORE_URL": metastore.jdbc_url, "LAKEHOUSE_METASTORE_USER": "hive",
            "LAKEHOUSE_METASTORE_PASSWORD": METASTORE_PASSWORD,
            "LAKEHOUSE_THRIFT_PASSWORD_FILE": str(root / "secrets" / "thrift-users"),
            "LAKEHOUSE_THRIFT_KEYSTORE": str(root / "secrets" / "thrift.p12"), "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD,
            "LAKEHOUSE_THRIFT_WRITERS": "ana",
        }
        for name in ("LAKEHOUSE_THRIFT_AUTH", "LAKEHOUSE_THRIFT_TLS", "LAKEHOUSE_THRIFT_HOST", "LAKEHOUSE_ENV"):
            env.pop(name, None)
        project = root / "sparkify_analytics"
        shutil.copytree(PROJECT, project)
        team = Team(root, settings, env, metastore, [], project, free_port())
        (project / "profiles.yml").write_text(PROFILES.format(port=team.port))

        built = team.cli("run", "incremental")  # a JVM of its own, on the team's metastore
        assert built.returncode == 0, built.stderr[-3000:]
        team.registered_by_the_pipeline = metastore.query(
            # Spark keeps a data source table's location in its storage properties (`path`).
            'SELECT d."NAME" || \'.\' || t."TBL_NAME" || \' \' || p."PARAM_VALUE" FROM "TBLS" t JOIN "DBS" d ON d."DB_ID" = t."DB_ID" '
            'JOIN "SDS" s ON s."SD_ID" = t."SD_ID" JOIN "SERDE_PARAMS" p ON p."SERDE_ID" = s."SERDE_ID" AND p."PARAM_KEY" = \'path\' '
            'ORDER BY 1')
        assert team.cli("thrift", "cert").returncode == 0
        for name, password in PASSWORDS.items():
            assert team.cli("thrift", "add-user", name, stdin=password + "\n").returncode == 0
        try:
            team.thrift("start")
            yield team
        finally:
            if team.thrift("stop").returncode != 0:
                _kill(team)


@dataclass
class Build:
    """What ana's dbt commands printed: build --store-failures (seed, run, test), run again, docs generate."""

    steps: dict[str, subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def build(team: Team) -> Build:
    steps = {}  # `build` = seed, run and test in the graph's order (one dbt process instead of three)
    for name, args in (("build", ["build", "--store-failures"]), ("run again", ["run"]), ("docs", ["docs", "generate"])):
        steps[name] = team.dbt(*args)
    return Build(steps)


def _ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def _tables(team: Team, schema: str) -> set[str]:
    return {row[1] for row in team.sql(f"SHOW TABLES IN {schema}")}


def _gold_count(spark, team: Team) -> int:
    return int(T.Warehouse(spark, team.settings).read(T.SONGPLAYS).count())


# ---------------------------------------------------------------------------------------- the catalog
def test_the_pipeline_registered_its_tables_once_in_the_team_metastore(team: Team) -> None:
    expected = sorted(f"{t.qualified} {team.settings.table_path(t.layer, t.name)}" for t in T.ALL_TABLES
                      if (team.warehouse / t.layer / t.name / "_delta_log").is_dir())
    assert [row.replace("file:///", "file:/") for row in team.registered_by_the_pipeline] == expected
    assert len(expected) >= 15


def test_jdbc_clients_see_each_tables_columns(spark, team: Team) -> None:
    """JDBC's GetColumns (what BI tools browse) lists gold's columns, not the empty schema of a bare Delta entry."""
    jvm = spark.sparkContext._jvm
    props = jvm.java.util.Properties()
    props.setProperty("user", "ana")
    props.setProperty("password", PASSWORDS["ana"])
    conn = jvm.org.apache.hive.jdbc.HiveDriver().connect(team.started.stdout.strip(), props)
    try:
        rows = conn.getMetaData().getColumns(None, "gold", "songplays", "%")
        columns = []
        while rows.next():
            columns.append(rows.getString("COLUMN_NAME"))
    finally:
        conn.close()
    assert columns == T.SONGPLAYS.schema.fieldNames()


# ---------------------------------------------------------------------------------------- dbt
def test_dbt_builds_anas_project_twice_in_her_sandbox(spark, team: Team, build: Build) -> None:
    first = _ok(build.steps["build"])
    assert re.search(r"OK loaded seed file dev_ana\.levels", first), first
    assert re.search(r"OK created sql view model dev_ana_staging\.stg_songplays", first), first
    assert re.search(r"OK created sql incremental model dev_ana\.daily_plays", first), first
    assert re.search(r"OK created sql table model dev_ana\.plays_by_level", first), first
    assert "PASS=3" in _ok(build.steps["run again"])  # the incremental model merges this time
    plays = _gold_count(spark, team)
    assert team.sql("SELECT sum(plays) FROM dev_ana.plays_by_level") == [(plays,)]
    assert team.sql("SELECT sum(plays) FROM dev_ana.daily_plays") == [(plays,)]
    assert team.sql("SELECT count(*) FROM dev_ana.daily_plays") == team.sql(
        "SELECT count(DISTINCT to_date(start_time), user_id) FROM gold.songplays")
    assert {"levels", "plays_by_level", "daily_plays"} <= _tables(team, "dev_ana")
    assert "stg_songplays" in _tables(team, "dev_ana_staging")  # dbt's custom schema: <target schema>_staging


def test_dbt_test_stores_its_failures_and_docs_list_the_columns(team: Team, build: Build) -> None:
    assert "PASS=8" in build.steps["build"].stdout  # 1 seed, 3 models, 4 tests
    assert len(_tables(team, "dev_ana_dbt_test__audit")) == 4  # one table of failing rows (none) per test
    _ok(build.steps["docs"])
    catalog = json.loads((team.project / "target" / "catalog.json").read_text())
    songplays = catalog["sources"]["source.sparkify_analytics.gold.songplays"]["columns"]
    assert [c.lower() for c in songplays] == T.SONGPLAYS.schema.fieldNames()
    assert set(catalog["nodes"]["model.sparkify_analytics.daily_plays"]["columns"]) == {"play_date", "user_id", "plays"}


def test_bo_cannot_build_into_anas_sandbox(team: Team, build: Build) -> None:
    proc = team.dbt("run", user="bo")
    assert proc.returncode != 0
    assert f"{REFUSED} CREATE VIEW on dev_ana_staging.stg_songplays: dev_ana_staging is not bo's" in proc.stdout, proc.stdout[-3000:]
    assert "bo may write dev_bo, dev_bo_*" in proc.stdout  # not analytics: thrift.writers is ana


def test_models_into_gold_are_refused(spark, team: Team, build: Build) -> None:
    versions = {t.qualified: T.Warehouse(spark, team.settings).version(t) for t in T.GOLD_TABLES}
    into_gold = team.dbt("run", "--select", "copy_of_users", "--vars", json.dumps({"attacks": True}), target="gold")
    assert into_gold.returncode != 0
    # dbt drops what it replaces first: the first statement into gold is refused, whichever it is
    assert re.search(rf"{REFUSED} [A-Z …]+ on gold\.copy_of_users: gold is the lakehouse's", into_gold.stdout), into_gold.stdout[-3000:]
    gold_folder = f"{team.settings.warehouse}/gold"
    over_gold = team.dbt("run", "--select", "into_gold_folder", "--vars", json.dumps({"attacks": True, "gold_folder": gold_folder}))
    assert over_gold.returncode != 0
    assert f"its files would be at {gold_folder}/into_gold_folder, outside the schema's own folder" in over_gold.stdout, \
        over_gold.stdout[-3000:]
    assert not (team.warehouse / "gold" / "into_gold_folder").exists()
    assert versions == {t.qualified: T.Warehouse(spark, team.settings).version(t) for t in T.GOLD_TABLES}


# ---------------------------------------------------------------------------------------- the write policy
ATTACKS = {  # what a session tries -> (user, SQL, what the refusal says); each of these ran before the policy
    "DROP TABLE in gold": ("ana", "DROP TABLE gold.songplays", "gold is the lakehouse's"),
    "DELETE in gold": ("ana", "DELETE FROM gold.users", "gold is the lakehouse's"),
    "MERGE into gold": ("ana", "MERGE INTO gold.users t USING dev_ana_attacks.t s ON t.user_id = s.user_id WHEN MATCHED THEN DELETE",
                        "gold is the lakehouse's"),
    "a view in silver": ("ana", "CREATE VIEW silver.mine AS SELECT 1 AS a", "silver is the lakehouse's"),
    "a table in analytics over gold's files": ("ana", "CREATE TABLE analytics.songplays USING delta LOCATION '{gold}/songplays'",
                                               "outside the schema's own folder"),
    "a path option over gold's files": ("ana", "CREATE TABLE analytics.users USING delta OPTIONS (path '{gold}/users') AS SELECT 1 AS a",
                                        "outside the schema's own folder"),
    "a schema over gold's folder": ("ana", "CREATE SCHEMA analytics_gold LOCATION '{gold}'", "outside the schema's own folder"),
    "a sandbox table moved over gold's files": ("ana", "ALTER TABLE dev_ana_attacks.t SET LOCATION '{gold}/users'",
                                                "outside the schema's own folder"),
    "a sandbox table renamed into gold": ("ana", "ALTER TABLE dev_ana_attacks.t RENAME TO gold.t", "gold is the lakehouse's"),
    "a sandbox view renamed into gold": ("ana", "ALTER VIEW dev_ana_attacks.v RENAME TO gold.v", "gold is the lakehouse's"),
    "a Delta table by path": ("ana", "INSERT INTO delta.`{gold}/users` SELECT * FROM gold.users", "path access"),
    "CLONE": ("ana", "CREATE TABLE dev_ana_attacks.c SHALLOW CLONE gold.songplays", "CLONE"),
    "RESTORE": ("ana", "RESTORE TABLE dev_ana_attacks.t TO VERSION AS OF 0", "RESTORE (RestoreTableCommand)"),
    "VACUUM": ("ana", "VACUUM dev_ana_attacks.t", "VACUUM (VacuumTableCommand)"),
    "OPTIMIZE": ("ana", "OPTIMIZE dev_ana_attacks.t", "OPTIMIZE (OptimizeTableCommand)"),
    "ADD JAR": ("ana", "ADD JAR '/tmp/evil.jar'", "ADD JAR (AddJarsCommand)"),
    "CREATE FUNCTION": ("ana", "CREATE FUNCTION dev_ana_attacks.f AS 'org.apache.hadoop.hive.ql.udf.UDFJson'", "CREATE FUNCTION"),
    "TRANSFORM": ("ana", "CREATE TABLE dev_ana_attacks.x AS SELECT TRANSFORM(user_id) USING 'id' AS (a) FROM gold.users", "TRANSFORM"),
    "reflect": ("ana", "CREATE TABLE dev_ana_attacks.r AS SELECT reflect('java.lang.System', 'getProperty', 'user.home') AS home",
                "reflect/java_method"),
    "a JDBC table over the metastore": (
        "ana", "CREATE TABLE dev_ana_attacks.tbls USING jdbc OPTIONS (url '{metastore}', dbtable '\"TBLS\"', user 'hive', password 'x')",
        "tables in a sandbox are Delta tables"),
    "Hadoop settings as table properties": (
        "ana", "CREATE TABLE dev_ana_attacks.o TBLPROPERTIES ('fs.file.impl' = 'org.apache.hadoop.fs.RawLocalFileSystem') AS SELECT 1 AS a",
        "no option or property fs.file.impl"),
    "ana's sandbox, by bo": ("bo", "CREATE TABLE dev_ana.mine AS SELECT 1 AS a", "dev_ana is not bo's"),
    "analytics, by a user not in thrift.writers": ("bo", "CREATE SCHEMA IF NOT EXISTS analytics", "writable by thrift.writers (ana)"),
    "a schema that is no sandbox": ("ana", "CREATE SCHEMA reports", "reports is not a sandbox"),
    "a global temporary view": ("bo", "CREATE GLOBAL TEMPORARY VIEW everyone AS SELECT 1 AS a", "global temporary view"),
}


@pytest.fixture(scope="module")
def attack_table(team: Team) -> str:
    """A table of ana's own to attack from (dev_ana_attacks.t)."""
    team.sql("CREATE SCHEMA IF NOT EXISTS dev_ana_attacks")
    team.sql("CREATE OR REPLACE TABLE dev_ana_attacks.t AS SELECT * FROM gold.users")
    team.sql("UPDATE dev_ana_attacks.t SET level = level")  # a second version: RESTORE to the first would change it
    team.sql("CREATE OR REPLACE VIEW dev_ana_attacks.v AS SELECT * FROM dev_ana_attacks.t")
    return "dev_ana_attacks.t"


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_write_policy_refuses(team: Team, attack_table: str, attack: str) -> None:
    user, sql, says = ATTACKS[attack]
    sql = sql.format(gold=f"{team.settings.warehouse}/gold", metastore=team.metastore.jdbc_url)
    with pytest.raises(Exception) as refused:
        team.sql(sql, user=user)
    message = str(refused.value)
    assert says in message, message[:1500]
    if says != "path access":  # the write policy's own refusals name the rule and what the user may write
        assert REFUSED in message and f"{user} may write " in message, message[:1500]


def test_nothing_was_written_where_the_policy_refused(spark, team: Team, attack_table: str) -> None:
    wh = T.Warehouse(spark, team.settings)
    assert sorted(p.name for p in (team.warehouse / "gold").iterdir()) == sorted(t.name for t in T.GOLD_TABLES)
    assert all(wh.last_commit(t).operation != "DELETE" for t in T.GOLD_TABLES)
    assert "analytics_gold" not in {r[0] for r in team.sql("SHOW SCHEMAS")}
    assert team.sql(f"SELECT count(*) FROM {attack_table}") == team.sql("SELECT count(*) FROM gold.users")


def test_in_their_sandboxes_users_build_tables_views_and_merges(team: Team) -> None:
    steps = [
        ("ana", "CREATE SCHEMA IF NOT EXISTS analytics"),
        ("ana", "CREATE OR REPLACE TABLE analytics.levels USING delta AS SELECT level, count(*) AS users FROM gold.users GROUP BY level"),
        ("ana", "INSERT INTO analytics.levels VALUES ('trial', 0)"),
        ("ana", "MERGE INTO analytics.levels t USING (SELECT 'trial' AS level, 2 AS users) s ON t.level = s.level "
                "WHEN MATCHED THEN UPDATE SET users = s.users WHEN NOT MATCHED THEN INSERT *"),
        ("ana", "UPDATE analytics.levels SET users = users + 1 WHERE level = 'trial'"),
        ("ana", "ALTER TABLE analytics.levels ADD COLUMNS (note STRING)"),
        ("ana", "CREATE OR REPLACE VIEW analytics.level_names AS SELECT level FROM analytics.levels"),
        ("bo", "CREATE SCHEMA IF NOT EXISTS dev_bo"),
        ("bo", "CREATE TABLE dev_bo.trial AS SELECT * FROM analytics.levels WHERE level = 'trial'"),
        ("bo", "INSERT OVERWRITE dev_bo.trial SELECT level, users * 10, note FROM analytics.levels WHERE level = 'trial'"),
        ("ana", "DELETE FROM analytics.levels WHERE level = 'trial'"),
    ]
    for user, sql in steps:
        team.sql(sql, user=user)
    assert team.sql("SELECT users, note FROM dev_bo.trial", user="bo") == [(30, None)]
    assert team.sql("SELECT count(*) FROM analytics.level_names") == team.sql("SELECT count(DISTINCT level) FROM gold.users")
    conn = team.connect("bo")  # a temporary view: any session, its own
    try:
        query(conn, "CREATE OR REPLACE TEMPORARY VIEW mine AS SELECT * FROM analytics.levels")
        assert query(conn, "SELECT count(*) FROM mine") == team.sql("SELECT count(DISTINCT level) FROM gold.users")
    finally:
        conn.close()
    team.sql("DROP TABLE dev_bo.trial", user="bo")
    team.sql("ALTER VIEW analytics.level_names RENAME TO analytics.level_list")
    team.sql("DROP VIEW analytics.level_list")
    assert not {"level_names", "level_list"} & _tables(team, "analytics")


def test_no_session_reads_the_metastore_password(team: Team) -> None:
    listed = str(team.sql("SET")) + str(team.sql("SET -v")) + str(team.sql("SET spark.hadoop.javax.jdo.option.ConnectionPassword"))
    assert METASTORE_PASSWORD not in listed
    assert METASTORE_PASSWORD not in (Path(team.env["LAKEHOUSE_RUN_DIR"]) / f"{team.port}.json").read_text()


# ---------------------------------------------------------------------------------------- restart, a new day
def test_the_server_restarts_with_anas_models_and_status_names_the_catalog(team: Team, build: Build) -> None:
    before = team.sql("SELECT * FROM dev_ana.plays_by_level ORDER BY level")
    assert team.thrift("stop").returncode == 0
    team.thrift("start")
    assert team.sql("SELECT * FROM dev_ana.plays_by_level ORDER BY level") == before
    assert "stg_songplays" in _tables(team, "dev_ana_staging")
    status = team.cli("thrift", "status", "--port", str(team.port))
    assert status.returncode == 0, status.stderr
    text = " ".join(status.stdout.split())
    assert f"catalog postgres ({team.metastore.jdbc_url}, user hive)" in text, text
    assert "read-only: bronze, gold, ops, silver; writable: analytics, analytics_* by ana; dev_<user>, dev_<user>_* by that user" in text
    assert METASTORE_PASSWORD not in status.stdout


def test_a_daily_run_beside_the_server_reaches_the_incremental_model(spark, team: Team, build: Build) -> None:
    (last_day,) = team.sql("SELECT max(play_date) FROM dev_ana.daily_plays")[0]
    generate(Path(team.settings.source.removeprefix("file:")), dataclasses.replace(SPEC, days=3))  # day 3 lands
    report = Pipeline(spark, team.settings).run("incremental")  # writes by path; the server sees the commits
    assert report.status == "succeeded" and report.sources["log_data"].files == 1
    _ok(team.dbt("run", "--select", "daily_plays"))
    plays = _gold_count(spark, team)
    assert team.sql("SELECT sum(plays) FROM dev_ana.daily_plays") == [(plays,)]
    assert team.sql("SELECT max(play_date) FROM dev_ana.daily_plays")[0][0] > last_day
