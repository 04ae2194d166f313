from __future__ import annotations

import os
import stat

import pytest

from lakehouse import deps
from lakehouse.session import redacted, s3a_conf


def test_secrets_are_redacted_when_logged() -> None:
    conf = {"spark.hadoop.fs.s3a.secret.key": "abc", "spark.hadoop.fs.s3a.access.key": "AKIA",
            "spark.hadoop.fs.s3a.session.token": "t", "spark.hadoop.fs.s3a.aws.credentials.provider": "Default",
            "spark.master": "local[2]"}
    assert redacted(conf) == {**conf, "spark.hadoop.fs.s3a.secret.key": "***", "spark.hadoop.fs.s3a.access.key": "***",
                              "spark.hadoop.fs.s3a.session.token": "***"}


def test_s3a_settings_follow_the_endpoint_env() -> None:
    assert "fs.s3a.endpoint" not in s3a_conf({})
    conf = s3a_conf({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"})
    assert conf["fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["fs.s3a.path.style.access"] == "true"
    assert conf["fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["fs.s3a.endpoint.region"] == "eu-west-1"
    assert conf["fs.s3a.input.stream.type"] == "classic"
    # Credentials never come from settings: only the provider chain.
    assert not any("secret" in k or "access.key" in k for k in conf)


def test_the_quick_jit_keeps_a_code_cache_a_run_does_not_fill() -> None:
    """C1 alone defaults to a 48 MB code cache; a pipeline run filled it in half a minute and ran on interpreted."""
    import dataclasses
    import re
    import subprocess

    from lakehouse.config import load_settings
    from lakehouse.session import driver_start_options

    def code_cache_mb(options: list[str]) -> int:
        flags = subprocess.run(["java", *options, "-XX:+PrintFlagsFinal", "-version"], capture_output=True, text=True, check=True)
        found = re.search(r"ReservedCodeCacheSize\s*=\s*(\d+)", flags.stdout)
        assert found, flags.stdout[-500:]
        return int(found.group(1)) // 2**20

    settings = dataclasses.replace(load_settings("local", {}, environ={}), spark_driver_jit="quick")
    quick = [o for o in driver_start_options(settings) if not o.startswith(("-XX:SharedArchiveFile", "-Xlog"))]
    assert "-XX:TieredStopAtLevel=1" in quick
    assert code_cache_mb(quick) >= code_cache_mb([]) >= 200


def test_the_lean_jit_keeps_c2_and_inlines_less() -> None:
    """`lean`: the JVM takes the inlining limits (a misspelt -XX flag stops the JVM) and keeps tiered C1 + C2."""
    import dataclasses
    import re
    import subprocess

    from lakehouse.config import load_settings
    from lakehouse.session import LEAN_INLINING, driver_start_options

    settings = dataclasses.replace(load_settings("local", {}, environ={}), spark_driver_jit="lean")
    lean = [o for o in driver_start_options(settings) if not o.startswith(("-XX:SharedArchiveFile", "-Xlog"))]
    assert set(LEAN_INLINING) <= set(lean) and not any(o.startswith("-XX:TieredStopAtLevel") for o in lean)
    flags = subprocess.run(["java", *lean, "-XX:+PrintFlagsFinal", "-version"], capture_output=True, text=True, check=True).stdout
    final = {m.group(1): int(m.group(2)) for m in re.finditer(r"\b(MaxInlineLevel|InlineSmallCode|FreqInlineSize|TieredStopAtLevel)\s*=\s*(\d+)", flags)}
    assert final == {"MaxInlineLevel": 9, "InlineSmallCode": 1000, "FreqInlineSize": 100, "TieredStopAtLevel": 4}, final


def test_the_driver_collects_garbage_with_the_parallel_collector(spark) -> None:
    """The driver's option reaches its JVM (a conflicting collector option would stop it from starting at all)."""
    beans = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getGarbageCollectorMXBeans()
    assert sorted(bean.getName() for bean in beans) == ["PS MarkSweep", "PS Scavenge"]


def test_generated_code_of_more_queries_than_one_run_makes_stays_compiled(spark) -> None:
    """Queries run again are not compiled again, though they made more classes (two each) than Spark's default cache keeps (100)."""
    codegen = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics

    def query(i: int) -> None:
        spark.range(3).selectExpr(f"id * {i} + {i} AS x").where(f"x % {i + 2} != {i + 1}").collect()

    for i in range(60):
        query(i)
    compiled = codegen.METRIC_COMPILATION_TIME().getCount()
    for i in range(60):
        query(i)
    assert codegen.METRIC_COMPILATION_TIME().getCount() == compiled


def test_local_paths_go_through_a_file_system_that_starts_no_process(spark, tmp_path) -> None:
    """Delta commits and Parquet files on file: paths start no `chmod`/`readlink` process (a Java Flight Recorder
    recording of the JVM's process starts says so), and permissions and links come out as Hadoop's own would make them."""
    if not deps.local_fs_jar().exists():
        pytest.skip(f"{deps.local_fs_jar()} is not built: `make setup` compiles it")
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    fs = jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI.create("file:///"), hadoop_conf)
    assert fs.getClass().getName() == "lakehouse.localfs.NoForkLocalFileSystem"

    recording = jvm.jdk.jfr.Recording()
    recording.enable("jdk.ProcessStart")
    recording.start()
    try:
        table = f"file:{tmp_path / 'table'}"
        for i in range(2):  # a new table, then a commit over it
            spark.range(5).selectExpr(f"id + {i} AS x").write.format("delta").mode("append").save(table)
        assert spark.read.format("delta").load(table).count() == 10
        raw = fs.getRawFileSystem()
        target, link = tmp_path / "plain.txt", tmp_path / "link.txt"
        target.write_text("x")
        os.symlink(target, link)
        raw.setPermission(jvm.org.apache.hadoop.fs.Path(f"file:{target}"), jvm.org.apache.hadoop.fs.permission.FsPermission("640"))
        plain_status = raw.getFileLinkStatus(jvm.org.apache.hadoop.fs.Path(f"file:{target}"))
    finally:
        recording.stop()
    dump = tmp_path / "processes.jfr"
    recording.dump(jvm.java.io.File(str(dump)).toPath())
    recording.close()
    events = jvm.jdk.jfr.consumer.RecordingFile.readAllEvents(jvm.java.io.File(str(dump)).toPath())
    commands = [events.get(i).getString("command") for i in range(events.size())]
    assert [c for c in commands if any(tool in c for tool in ("chmod", "readlink", "stat", "ls "))] == []

    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    link_status = raw.getFileLinkStatus(jvm.org.apache.hadoop.fs.Path(str(link)))  # a link: read by Hadoop's code
    assert link_status.isSymlink() and not plain_status.isSymlink() and plain_status.getLen() == 1


def test_every_jvm_has_one_classpath_so_the_class_archive_fits_the_endpoint_too(tmp_path) -> None:
    """The archive maps only into a JVM whose classpath starts as it did when it was written (the pipeline's); the
    endpoint's jar first on its classpath made the endpoint load every class from jars (ready in 7.7 s, 5.2 s now)."""
    from lakehouse.config import load_settings
    from lakehouse.endpoint.server import server_conf
    from lakehouse.session import spark_conf

    if not deps.cached_jars() or not deps.endpoint_jar().exists():
        pytest.skip("`make setup` has not resolved the jars and compiled the endpoint's classes")
    settings = load_settings("local", {"warehouse": str(tmp_path / "warehouse")}, environ={})
    pipeline, endpoint = spark_conf(settings, "run"), server_conf(settings, tmp_path / "endpoint")
    for key in ("spark.driver.extraClassPath", "spark.executor.extraClassPath"):
        assert endpoint[key] == pipeline[key]
        assert pipeline[key].split(os.pathsep)[-1] == str(deps.endpoint_jar())


def test_classes_named_on_every_call_are_resolved_once(spark, tmp_path) -> None:
    """F.col, F.lit, DeltaTable.forPath: after their first call, no more name lookups in the JVM, same answers."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    path = str(tmp_path / "t")
    spark.range(3).write.format("delta").save(path)
    client = spark.sparkContext._jvm._gateway_client
    sent: list[str] = []
    send = client.send_command

    def counting(command: str, *args, **kwargs):
        sent.append(command)
        return send(command, *args, **kwargs)

    def lookups(work) -> list[str]:
        sent.clear()
        client.send_command = counting
        try:
            work()
        finally:
            del client.send_command
        return [".".join(c.split("\n")[2:4 if c.startswith("r\nm\n") else 3]) for c in sent if c.startswith(("r\nu\n", "r\nm\n"))]

    def work() -> None:
        assert DeltaTable.isDeltaTable(spark, path)
        rows = DeltaTable.forPath(spark, path).toDF().where(F.col("id") > F.lit(0)).select(F.sum("id")).collect()
        assert rows[0][0] == 3

    lookups(work)  # the first call resolves what it names
    assert lookups(work) == []
