"""The one SparkSession factory: Delta, UTC, S3A, 2-core sizing, jars from the setup cache."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse import deps
from lakehouse.config import PROJECT_ROOT, Settings
from lakehouse.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

MIN_JAVA = 17
LOG4J_CONF = PROJECT_ROOT / "conf" / "log4j2.properties"
# What the JVM prints at start although nothing is wrong: Spark 4.2's launcher always adds
# --add-modules=jdk.incubator.vector and Java announces it on stderr (no switch turns that off).
JVM_START_NOISE = ("WARNING: Using incubator modules",)
METASTORE_PASSWORD_ENV = "LAKEHOUSE_METASTORE_PASSWORD"
# The Hive 2.3 metastore's persistent classes (package.jdo of the hive-metastore jar pyspark ships).
METASTORE_CLASSES = (
    "MDatabase", "MFieldSchema", "MType", "MTable", "MConstraint", "MSerDeInfo", "MOrder", "MColumnDescriptor", "MStringList",
    "MStorageDescriptor", "MPartition", "MIndex", "MRole", "MRoleMap", "MGlobalPrivilege", "MDBPrivilege", "MTablePrivilege",
    "MPartitionPrivilege", "MTableColumnPrivilege", "MPartitionColumnPrivilege", "MPartitionEvent", "MMasterKey",
    "MDelegationToken", "MTableColumnStatistics", "MPartitionColumnStatistics", "MVersionTable", "MResourceUri", "MFunction",
    "MNotificationLog", "MNotificationNextId",
)


def inside_spark_submit() -> bool:
    """True when spark-submit already started the JVM (then master, jars and memory are its business)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def check_java() -> None:
    """Fail fast with one clear line when Java is missing or older than 17."""
    java_home = os.environ.get("JAVA_HOME")
    java = os.path.join(java_home, "bin", "java") if java_home else shutil.which("java")
    if not java or not os.path.exists(java):
        where = f"JAVA_HOME={java_home}" if java_home else "PATH"
        raise ConfigError(f"Java not found (looked in {where}); install Java {MIN_JAVA}+ (e.g. apt-get install openjdk-17-jdk-headless)")
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{java} -version failed: {exc}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise ConfigError(f"could not read the Java version from `{java} -version`: {out.strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise ConfigError(f"Java {major} at {java} is too old: Spark 4 needs Java {MIN_JAVA}+ (set JAVA_HOME)")


def s3a_conf(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Hadoop S3A settings; a non-AWS endpoint comes from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL."""
    env = os.environ if environ is None else environ
    conf = {
        # The classic stream: the "analytics" default needs another jar and grows in long-lived processes.
        "fs.s3a.input.stream.type": "classic",
        "fs.s3a.aws.credentials.provider": "software.amazon.awssdk.auth.credentials.DefaultCredentialsProvider",
        "fs.s3a.attempts.maximum": "3",
        "fs.s3a.retry.limit": "3",
        "fs.s3a.connection.establish.timeout": "5s",
        "fs.s3a.connection.timeout": "60s",
    }
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        conf.update(
            {
                "fs.s3a.endpoint": endpoint,
                "fs.s3a.path.style.access": "true",
                "fs.s3a.connection.ssl.enabled": str(endpoint.startswith("https://")).lower(),
                "fs.s3a.endpoint.region": region or "us-east-1",
                # Third-party stores: no SDK >= 2.30 default checksums, no conditional create.
                "fs.s3a.checksum.validation": "false",
                "fs.s3a.create.checksum.algorithm": "",
                "fs.s3a.create.conditional.enabled": "false",
            }
        )
    elif region:
        conf["fs.s3a.endpoint.region"] = region
    return conf


def apply_s3a_conf(spark: SparkSession, conf: dict[str, str | None]) -> dict[str, str | None]:
    """Set Hadoop keys (e.g. `s3a_conf()`) on a running session; None unsets. Returns the previous values.

    `spark.hadoop.*` is read once, when the session starts; this is for a session that outlives a change
    of endpoint (tests). S3A FileSystems already cached keep their settings: close them (close_s3a).
    """
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    previous: dict[str, str | None] = {}
    for key, value in conf.items():
        previous[key] = hadoop.get(key)
        if value is None:
            hadoop.unset(key)
        else:
            hadoop.set(key, value)
    return previous


def close_s3a(spark: SparkSession, uri: str) -> None:
    """Close (and drop from Hadoop's cache) the S3A FileSystem of `uri`'s bucket, if one was opened."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    jvm.org.apache.hadoop.fs.FileSystem.get(jvm.java.net.URI(uri), hadoop).close()


def metastore_conf(settings: Settings, derby: Path | None = None) -> dict[str, str]:
    """A persistent catalog: Spark's own Hive metastore client (pyspark ships it, with Derby and DataNucleus).

    `catalog = postgres`: every process uses the one PostgreSQL metastore (password from LAKEHOUSE_METASTORE_PASSWORD).
    `derby`: an embedded Derby database in that folder (the SQL endpoint's, `catalog = embedded`). Otherwise {}:
    an in-memory catalog. Delta keeps each table's columns in the metastore, for JDBC clients that browse them.
    """
    if settings.catalog == "postgres":
        jdo = {
            "javax.jdo.option.ConnectionURL": settings.metastore_url,
            "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
            "javax.jdo.option.ConnectionUserName": settings.metastore_user,
            "javax.jdo.option.ConnectionPassword": os.environ.get(METASTORE_PASSWORD_ENV, ""),
        }
    elif derby is not None:
        jdo = {"javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={derby};create=true"}
    else:
        return {}
    # DataNucleus creates the metastore's tables (no schema tool, no version check), all of them when the metastore
    # opens: created lazily, a table's foreign keys wait on the rows of the transaction that needed it (PostgreSQL
    # waits for ever there: the first CREATE TABLE hung).
    jdo.update({"datanucleus.schema.autoCreateAll": "true", "hive.metastore.schema.verification": "false",
                "datanucleus.autoStartMechanism": "Classes",
                "datanucleus.autoStartClassNames": ",".join(f"org.apache.hadoop.hive.metastore.model.{c}" for c in METASTORE_CLASSES)})
    conf = {f"spark.hadoop.{k}": v for k, v in jdo.items()}
    conf["spark.sql.catalogImplementation"] = "hive"
    conf["spark.databricks.delta.catalog.update.enabled"] = "true"
    return conf


# file: paths through lakehouse/localfs (compiled by `make setup`): Hadoop's local file system without Hadoop's native
# library starts a `chmod` process for every file it creates and a `readlink` for every rename Delta commits. Profiled
# (Java Flight Recorder), six daily runs started 1,340 processes, 13-16 ms each; with it, none.
LOCAL_FS_CONF = {
    "spark.hadoop.fs.file.impl": "lakehouse.localfs.NoForkLocalFileSystem",
    "spark.hadoop.fs.AbstractFileSystem.file.impl": "lakehouse.localfs.NoForkLocalFs",
}


def spark_conf(settings: Settings, app_name: str, ui: bool = False) -> dict[str, str]:
    """Every Spark setting the lakehouse relies on, as one dict (also written for spark-submit)."""
    conf: dict[str, str] = {
        "spark.app.name": app_name,
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.catalogImplementation": "in-memory",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.default.parallelism": str(settings.spark_shuffle_partitions),
        # Measured: on 2 cores with few shuffle partitions AQE's re-planning costs more than it saves.
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.autoBroadcastJoinThreshold": str(64 * 1024 * 1024),
        "spark.sql.files.maxPartitionBytes": str(64 * 1024 * 1024),
        "spark.sql.files.openCostInBytes": str(256 * 1024),
        # Generated code is cached by its source; the default keeps 100 classes. One run makes about 500
        # shapes (the flows' MERGEs share many), so a second run in the same JVM (tests, a notebook, the
        # Thrift server's queries) compiled ~430 of them again: 1 s or more per run. Measured on the
        # suite's data: with 1,000 a repeated run compiles 2 and takes 6.8-7.8 s instead of 8.9-9.4 s.
        "spark.sql.codegen.cache.maxEntries": "1000",
        # Spark lists a folder of many subfolders (song_data/A/B/C) in a job of up to 10000 tasks by
        # default: 25 s of task overhead for 20k song files. A few tasks do it in 1 s.
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(2 * max(2, settings.spark_shuffle_partitions)),
        "spark.sql.warehouse.dir": settings.sandbox_path,
        "spark.ui.enabled": str(ui).lower(),
        # With the UI off, the driver still keeps recent jobs, stages, tasks and queries for its status store: by
        # default 1,000 jobs, stages and queries and 100,000 tasks, which a long-lived driver (the watch mode, the
        # Thrift server) accumulates for hours, its heap growing with every run. The latest hundred are plenty.
        "spark.ui.retainedJobs": "100",
        "spark.ui.retainedStages": "100",
        "spark.ui.retainedTasks": "10000",
        "spark.sql.ui.retainedExecutions": "100",
        "spark.ui.showConsoleProgress": "false",
        # PySpark records the Python call site of every DataFrame operation (a stack walk and JVM calls each) for
        # error messages; measured, a warm daily run's median 6.01 s without it against 6.84 s with it (0.88x).
        "spark.python.sql.dataFrameDebugging.enabled": "false",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.databricks.delta.merge.repartitionBeforeWrite.enabled": "true",
        "spark.databricks.delta.optimizeWrite.enabled": "false",
        # Measured: enabled, auto compaction fired inside full rebuilds (21 s of one-task rewrites at 1.8M
        # events). Small files from daily runs are compacted by `lakehouse maintain` instead.
        "spark.databricks.delta.autoCompact.enabled": "false",
        "spark.databricks.delta.stalenessLimit": "0",
        # A checkpoint every 10 commits of a table (Delta's default, said where Delta reads it: the table property
        # delta.checkpointInterval, defaulted for tables this session creates; `spark.databricks.delta.checkpointInterval`
        # is no Delta setting and did nothing).
        "spark.databricks.delta.properties.defaults.checkpointInterval": "10",
        # Delta keeps a small table's file list in each version's .crc file; for a table's first version it collects
        # the files of the version before, which does not exist, in a Spark job. Measured in one JVM: a new
        # warehouse's 16 tables took 16 jobs and 1.36 s (median of 5), 0 jobs and 0.55 s without (0.40x); the daily
        # runs after it start as many jobs either way.
        "spark.databricks.delta.allFilesInCrc.enabled": "false",
        # Delta rebuilds a table snapshot with a shuffle of 50 partitions by default: far too many for 2 cores.
        "spark.databricks.delta.snapshotPartitions": str(max(2, settings.spark_shuffle_partitions)),
    }
    conf.update({f"spark.hadoop.{k}": v for k, v in s3a_conf().items()})
    conf.update(metastore_conf(settings))
    if not inside_spark_submit():
        jars = deps.cached_jars()
        if not jars:
            raise ConfigError(f"JVM dependencies (Delta, hadoop-aws) are not in {deps.jars_dir()}: run `make setup` first")
        # The project's own classes after the dependencies, in every JVM alike (pipeline, spark-submit, SQL endpoint):
        # the one class-data archive then fits them all (an endpoint with its jar first did not use it: 7.7 s to ready, 5.2 s now).
        local_fs, endpoint = deps.local_fs_jar(), deps.endpoint_jar()
        if local_fs.exists():
            jars = [*jars, local_fs]
            conf.update(LOCAL_FS_CONF)
        if endpoint.exists():
            jars = [*jars, endpoint]
        classpath = os.pathsep.join(str(j) for j in jars)
        java_opts = f"-Duser.timezone=UTC -Dlog4j2.configurationFile={LOG4J_CONF.as_uri()}"
        conf.update(
            {
                "spark.master": settings.spark_master,
                "spark.driver.memory": settings.spark_driver_memory,
                "spark.driver.extraClassPath": classpath,
                "spark.executor.extraClassPath": classpath,
                "spark.driver.extraJavaOptions": " ".join([java_opts, *driver_start_options(settings)]),
                "spark.executor.extraJavaOptions": java_opts,
            }
        )
        if settings.spark_master.startswith("local"):
            conf["spark.driver.host"] = "127.0.0.1"
            conf["spark.driver.bindAddress"] = "127.0.0.1"
    return conf


# C2 with shallower inlining than JDK 17's defaults (15 levels, 2,500 bytes of compiled callee, 325 bytecodes of a hot
# callee): `spark.driver_jit = "lean"`, measured in docs/performance.md#driver-start (the JVM's CPU 0.75x on a test).
LEAN_INLINING = ("-XX:MaxInlineLevel=9", "-XX:InlineSmallCode=1000", "-XX:FreqInlineSize=100")


def driver_start_options(settings: Settings, archive: Path | None = None) -> list[str]:
    """JVM options that make the driver start and warm up faster (measured on 2 cores, see README: Performance).

    - `spark.driver_jit = "quick"`: C1 only, with the full JIT's code cache size. C2's compiler threads
      compete with the work for the cores during runs of a few minutes; `full` keeps the JVM's default for long runs on many cores.
      `lean` keeps C2 with less inlining (`LEAN_INLINING`): for a process that runs many different queries for minutes
      (the test suite's JVMs), where C2 compiling Spark's and Delta's deep call chains was a third of the JVM's CPU.
    - The class-data archive of `make setup` (`deps.class_archive()`): Spark's, Delta's and our classes
      mapped from one file instead of loaded from jars. A stale archive (other jars or Java) is ignored
      by the JVM; its log lines about it are off.
    - The parallel collector instead of G1: the driver's heap is a few GB of short-lived planning objects and
      small batches, where G1's write barriers and concurrent threads cost CPU and its short pauses buy nothing
      (docs/performance.md#driver-start: the demo's run 0.95x). Executors keep the JVM's default, G1, for large heaps.
    """
    # C1 alone gets a 48 MB code cache, which a run fills in about half a minute; the JVM then stops compiling
    # and runs the rest interpreted. Keep the default size of the full JIT.
    options = {"quick": ["-XX:TieredStopAtLevel=1", "-XX:ReservedCodeCacheSize=240m"], "lean": list(LEAN_INLINING)}.get(settings.spark_driver_jit, [])
    options.append("-XX:+UseParallelGC")
    archive = archive or deps.class_archive()
    if archive.exists():
        options += [f"-XX:SharedArchiveFile={archive}", "-Xlog:cds=off", "-Xlog:cds+dynamic=off"]
    return options


# Spark generates Java source for each query's stages and projections, formats it and compiles it. For a daily
# run's few thousand rows that costs more than the rows: profiled, 44% of the driver's CPU in a new day's run went
# to generating code (a quarter in formatting its source, which is done again even when the compiled class is
# cached). Interpreted, the same queries give the same rows (Spark's own fallback when code cannot be generated).
INTERPRETED = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


@contextlib.contextmanager
def session_settings(spark: SparkSession, values: dict[str, str]) -> Iterator[None]:
    """The SQL settings `values` in the block; the session's own values afterwards (other commands share it)."""
    before = {key: spark.conf.get(key, None) for key in values}
    for key, value in values.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, earlier in before.items():
            if earlier is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, earlier)


def build_session(settings: Settings, app_name: str = "lakehouse", ui: bool = False,
                  driver_options: Sequence[str] = ()) -> SparkSession:
    """Create (or return) the SparkSession configured for `settings`. Called by entry points only.

    `driver_options`: more JVM options for a driver this call starts (not under spark-submit).
    """
    if not inside_spark_submit():
        check_java()
    conf = spark_conf(settings, app_name, ui=ui)
    if driver_options and "spark.driver.extraJavaOptions" in conf:
        conf["spark.driver.extraJavaOptions"] += " " + " ".join(driver_options)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    if settings.spark_master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log.debug("Spark settings: %s", redacted(conf))
    with _jvm_stderr_without(JVM_START_NOISE):
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    _check_delta_loaded(spark)
    remember_jvm_names(spark)
    log.debug("SparkSession ready: master=%s, Spark %s", spark.sparkContext.master, spark.version)
    return spark


@contextlib.contextmanager
def _jvm_stderr_without(noise: tuple[str, ...]) -> Iterator[None]:
    """Processes started inside (the JVM) write stderr through a pipe that drops lines starting with `noise`;
    everything else goes on to the real stderr, for as long as the JVM lives."""
    try:
        restore, forward = os.dup(2), os.dup(2)
    except OSError:  # no stderr to speak of
        yield
        return
    read_end, write_end = os.pipe()

    def pump() -> None:
        with os.fdopen(read_end, "rb") as src, os.fdopen(forward, "wb", buffering=0) as dst:
            for line in src:
                if not line.startswith(tuple(n.encode() for n in noise)):
                    dst.write(line)

    threading.Thread(target=pump, name="jvm-stderr", daemon=True).start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        os.dup2(restore, 2)  # this process writes to the real stderr again; only the JVM holds the pipe
        os.close(restore)


# Classes pyspark and delta-spark name on every call: `F.col` looks up `functions` by its short name, `_to_seq`
# `PythonUtils`, `DeltaTable.forPath` walks `io.delta.tables`. Py4J asks the JVM each time, and the JVM tries a
# short name in every imported package against all ~300 jars before it finds it (F.col: 366 µs against 14 µs for a
# fully qualified class); a new day made about 2,500 (docs/performance.md#jvm-names-resolved-once).
REMEMBERED_CLASSES = {
    "org.apache.spark.sql.functions": ("functions", "org.apache.spark.sql.functions"),
    "org.apache.spark.api.python.PythonUtils": ("PythonUtils",),
    "org.apache.spark.sql.api.python.PythonSQLUtils": ("PythonSQLUtils",),
}  # class -> the names pyspark gives it
REMEMBERED_PACKAGES = ("io", "org")  # delta-spark walks io.delta.tables; the state file code org.apache.hadoop


def remember_jvm_names(spark: SparkSession) -> None:
    """Resolve the classes pyspark and delta-spark look up on every call once per JVM, and their static methods
    once per class: the JVM's answers cannot change while it runs (its classes are loaded once)."""
    from py4j.java_gateway import JavaClass, JavaMember, JavaPackage

    def remembering(found: object) -> object:
        if isinstance(found, JavaPackage):
            return Package(found._fqn, found._gateway_client, found._jvm_id)
        if isinstance(found, JavaClass):
            return Class(found._fqn, found._gateway_client)
        return found

    class Class(JavaClass):
        def __getattr__(self, name: str) -> object:
            found = remembering(super().__getattr__(name))
            if isinstance(found, (JavaMember, JavaClass)):  # a method or nested class; a static field's value may change
                self.__dict__[name] = found
            return found

    class Package(JavaPackage):
        def __getattr__(self, name: str) -> object:
            self.__dict__[name] = found = remembering(super().__getattr__(name))
            return found

    jvm = spark.sparkContext._jvm
    assert jvm is not None
    client = jvm._gateway_client
    for fqn, names in REMEMBERED_CLASSES.items():
        one = Class(fqn, client)  # one per class, so that its methods are looked up once whatever the name
        for name in names:
            jvm.__dict__.setdefault(name, one)
    for name in REMEMBERED_PACKAGES:
        jvm.__dict__.setdefault(name, Package(name, client, jvm._id))


def _check_delta_loaded(spark: SparkSession) -> None:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    try:
        jvm.java.lang.Class.forName("io.delta.tables.DeltaTable")
    except Exception:
        raise ConfigError(
            "Delta Lake classes are not on the driver classpath: under spark-submit pass "
            "--properties-file .cache/spark-defaults.conf (written by `make setup`) or "
            f"--packages {','.join(deps.DELTA_PACKAGES)}"
        ) from None


def redacted(conf: dict[str, str]) -> dict[str, str]:
    """A copy of `conf` safe to log: secrets and keys masked."""
    secret = re.compile(r"(secret|password|token|credential.*key|access\.key|session\.key)", re.I)
    return {k: ("***" if secret.search(k) and "provider" not in k else v) for k, v in conf.items()}


def write_spark_submit_defaults(settings: Settings, path: str) -> None:
    """Write a spark-defaults style file so `spark-submit --properties-file` gets jars and Delta settings."""
    conf = spark_conf(settings, "lakehouse")
    for key in ("spark.app.name", "spark.master", "spark.ui.enabled", "spark.sql.warehouse.dir",
                "spark.driver.host", "spark.driver.bindAddress"):
        conf.pop(key, None)
    with open(path, "w") as fh:
        fh.write("# Written by `make setup`: spark-submit --properties-file .cache/spark-defaults.conf jobs/daily.py ...\n")
        for key, value in sorted(conf.items()):
            if key.startswith("spark.hadoop.fs.s3a.") and key.removeprefix("spark.hadoop.") not in s3a_conf({}):
                continue  # endpoint-specific S3A settings are read from the environment at run time
            if key in metastore_conf(settings):
                continue  # the catalog (and its password) are the job's settings, resolved when it starts
            fh.write(f"{key} {value}\n")
