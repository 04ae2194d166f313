"""The `catalog` setting (memory, embedded, postgres), the metastore's Spark settings and what the endpoint says of its
write policy; no Spark, no server (the servers are in tests/e2e/test_thrift.py and test_dbt.py)."""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.config import load_settings
from lakehouse.endpoint import server
from lakehouse.errors import ConfigError
from lakehouse.session import METASTORE_PASSWORD_ENV, metastore_conf, write_spark_submit_defaults

PG = "jdbc:postgresql://127.0.0.1:5432/metastore"


def _settings(**env: str):
    return load_settings("local", {"warehouse": "/data/wh"}, environ={f"LAKEHOUSE_{k.upper()}": v for k, v in env.items()})


def test_the_catalog_setting_and_its_metastore_resolve_and_refuse_what_cannot_work() -> None:
    assert (_settings().catalog, _settings().writers) == ("embedded", ())
    team = _settings(catalog="postgres", metastore_url=PG, metastore_user="hive", thrift_writers=" ana, bo ,")
    assert (team.catalog, team.metastore_url, team.metastore_user, team.writers) == ("postgres", PG, "hive", ("ana", "bo"))
    with pytest.raises(ConfigError, match=r"catalog 'hive' is not one of memory, embedded, postgres"):
        _settings(catalog="hive")
    with pytest.raises(ConfigError, match=r"LAKEHOUSE_METASTORE_URL: catalog is postgres, so metastore.url must look like "
                                          r"jdbc:postgresql://HOST:PORT/DATABASE, not 'postgres://x'"):
        _settings(catalog="postgres", metastore_url="postgres://x")
    with pytest.raises(ConfigError, match=r"thrift.writers: 'ana smith' is not a user name"):
        _settings(thrift_writers="ana smith")


def test_only_a_persistent_catalog_brings_spark_s_hive_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(METASTORE_PASSWORD_ENV, "pg-secret")
    assert metastore_conf(_settings()) == {} and metastore_conf(_settings(catalog="memory")) == {}
    team = metastore_conf(_settings(catalog="postgres", metastore_url=PG, metastore_user="hive"))
    assert team["spark.sql.catalogImplementation"] == "hive"
    assert team["spark.hadoop.javax.jdo.option.ConnectionURL"] == PG
    assert team["spark.hadoop.javax.jdo.option.ConnectionPassword"] == "pg-secret"  # from the environment only
    assert team["spark.databricks.delta.catalog.update.enabled"] == "true"  # columns in the metastore, for JDBC clients
    assert "org.apache.hadoop.hive.metastore.model.MTable" in team["spark.hadoop.datanucleus.autoStartClassNames"]
    derby = metastore_conf(_settings(), derby=tmp_path / "metastore")
    assert derby["spark.hadoop.javax.jdo.option.ConnectionURL"] == f"jdbc:derby:;databaseName={tmp_path / 'metastore'};create=true"
    # spark-submit's defaults file never holds the catalog (nor its password): a job resolves it when it starts.
    out = tmp_path / "spark-defaults.conf"
    write_spark_submit_defaults(_settings(catalog="postgres", metastore_url=PG, metastore_user="hive"), str(out))
    assert "pg-secret" not in out.read_text() and "catalogImplementation" not in out.read_text()


def test_the_endpoint_keeps_its_embedded_catalog_with_the_warehouse() -> None:
    assert server.embedded_metastore(_settings()) == Path("/data/wh/_system/metastore")
    on_s3 = load_settings("local", {"warehouse": "s3a://team-bucket/lake/wh"}, environ={})
    assert server.embedded_metastore(on_s3) == server.run_dir() / "metastore" / "s3a_team-bucket_lake_wh"
    assert server.catalog_description(_settings()) == "embedded (Derby in /data/wh/_system/metastore)"
    assert server.catalog_description(_settings(catalog="postgres", metastore_url=PG, metastore_user="hive")) == \
        f"postgres ({PG}, user hive)"


def test_the_write_policy_in_one_phrase_for_each_sign_in() -> None:
    assert server.writable_description(_settings()) == \
        f"analytics, analytics_* by the local user {getpass.getuser()}; no dev_<user> schemas without sign-in"
    assert server.writable_description(_settings(thrift_writers="somebody-else")) == \
        "analytics, analytics_* by nobody (thrift.writers: somebody-else); no dev_<user> schemas without sign-in"
    signed_in = dataclasses.replace(_settings(), thrift_auth="ldap")
    assert server.writable_description(signed_in) == \
        "analytics, analytics_* by every signed-in user; dev_<user>, dev_<user>_* by that user"
    assert server.writable_description(dataclasses.replace(signed_in, thrift_writers="ana,bo")).startswith("analytics, analytics_* by ana, bo;")
    assert server.lakehouse_schemas() == ["bronze", "gold", "ops", "silver"]


def test_status_names_the_catalog_and_the_writable_schemas_from_the_info_file_alone(tmp_path: Path) -> None:
    """`thrift status` starts no JVM: it reads what `start` wrote beside the pid file."""
    run_dir, port = tmp_path / "run", 10123
    run_dir.mkdir()
    # A process that looks like a server driver (its command line names the serve module).
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", server.SERVE_MODULE, "serve"])
    try:
        (run_dir / f"{port}.pid").write_text(f"{fake.pid}\n")
        (run_dir / f"{port}.json").write_text(json.dumps({
            "pid": fake.pid, "host": "127.0.0.1", "port": port, "warehouse": "file:/data/wh", "auth": "password-file", "tls": True,
            "catalog": "embedded", "catalog_detail": "embedded (Derby in /data/wh/_system/metastore)",
            "read_only": ["bronze", "gold", "ops", "silver"], "writable": "analytics, analytics_* by ana; dev_<user>, dev_<user>_* by that user",
        }))
        env = {**os.environ, "LAKEHOUSE_RUN_DIR": str(run_dir), "LAKEHOUSE_JARS_DIR": str(tmp_path / "no-jars")}
        proc = subprocess.run([sys.executable, "-m", "lakehouse.cli", "thrift", "status", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, env=env)
    finally:
        fake.kill()
        fake.wait()
    assert proc.returncode == 0, proc.stderr
    assert "sign-in password-file, TLS, catalog embedded (Derby in /data/wh/_system/metastore)" in proc.stdout
    assert "read-only: bronze, gold, ops, silver; writable: analytics, analytics_* by ana; dev_<user>, dev_<user>_* by that user" in proc.stdout
