"""JVM dependencies: resolved once from Maven Central by coordinates (`make setup`), then used offline.

Resolution goes through Spark's own Ivy (`spark.jars.packages`) into `.cache/ivy`. Jars that
pyspark already ships (any version: Hadoop client, Parquet, Jackson, log4j, ...) are left out, so
the driver classpath never shadows Spark's own classes (delta-io/delta#7415). What remains is
hard-linked into `.cache/jars/`, which the SparkSession factory puts on the driver/executor classpath.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from lakehouse.config import PROJECT_ROOT
from lakehouse.errors import ConfigError

DELTA_PACKAGES = ("io.delta:delta-spark_4.2_2.13:4.4.0",)
# hadoop-aws must match pyspark's bundled Hadoop client (3.5.0); the SDK bundle is "provided" there.
S3_PACKAGES = ("org.apache.hadoop:hadoop-aws:3.5.0", "software.amazon.awssdk:bundle:2.35.4")
# The JDBC driver of a PostgreSQL metastore (catalog = postgres); Spark's Hive client shares org.postgresql classes.
CATALOG_PACKAGES = ("org.postgresql:postgresql:42.7.14",)
# Jars taken alone, without their dependencies. Hive's function registry (hive-exec 2.3.10, shipped by pyspark)
# names hive-llap-common's LlapSigner, which Spark 4 no longer ships: without it the registry's first use (the
# SQL endpoint closing a session) throws NoClassDefFoundError and kills the Thrift handler thread of whichever
# session was opening then. Its own dependencies are Hive's and Hadoop's, which pyspark has.
STANDALONE_PACKAGES = ("org.apache.hive:hive-llap-common:2.3.10",)
TRANSITIVE_PACKAGES = DELTA_PACKAGES + S3_PACKAGES + CATALOG_PACKAGES  # taken with their dependencies
ALL_PACKAGES = TRANSITIVE_PACKAGES + STANDALONE_PACKAGES  # the order of the manifest

CACHE_DIR = Path(os.environ.get("LAKEHOUSE_CACHE_DIR", PROJECT_ROOT / ".cache"))
MANIFEST = "COORDINATES"


def jars_dir() -> Path:
    return Path(os.environ.get("LAKEHOUSE_JARS_DIR", CACHE_DIR / "jars"))


def class_archive() -> Path:
    """The driver JVM's class-data archive (written by `python -m lakehouse.jvm_archive` in `make setup`)."""
    return CACHE_DIR / "jvm" / "lakehouse.jsa"


LOCAL_FS_SOURCES = Path(__file__).parent / "localfs"


def local_fs_jar() -> Path:
    """The local file system that starts no process (lakehouse/localfs/*.java, compiled by `make setup`)."""
    return CACHE_DIR / "jvm" / "lakehouse-localfs.jar"


def endpoint_jar() -> Path:
    """The SQL endpoint's sign-in and write-policy classes (lakehouse/endpoint/jvm/*.java, compiled by `make setup`)."""
    return CACHE_DIR / "jvm" / "lakehouse-thrift.jar"


def cached_jars() -> list[Path]:
    """Jar files of a completed `make setup`, or [] when setup has not run for these coordinates."""
    directory = jars_dir()
    manifest = directory / MANIFEST
    if not manifest.exists() or manifest.read_text().split() != list(ALL_PACKAGES):
        return []
    return sorted(directory.glob("*.jar"))


def _artifact_name(jar_file: str, ivy: bool = False) -> str:
    """'jackson-core-2.21.2.jar' -> 'jackson-core'; with ivy=True the '<organisation>_' prefix of
    Ivy's retrieve pattern is dropped first ('commons-pool_commons-pool-1.6.jar' -> 'commons-pool')."""
    base = jar_file.rsplit("/", 1)[-1].removesuffix(".jar")
    if ivy:
        base = base.split("_", 1)[1]
    match = re.match(r"^(.*?)-\d[\w.\-]*$", base)
    return match.group(1) if match else base


def _pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def resolve(packages: tuple[str, ...] = TRANSITIVE_PACKAGES, standalone: tuple[str, ...] = STANDALONE_PACKAGES) -> list[Path]:
    """Resolve `packages` (with their dependencies) and `standalone` (without) with Spark's Ivy, and link the
    jars Spark lacks into jars_dir()."""
    from pyspark.sql import SparkSession

    ivy_dir = CACHE_DIR / "ivy"
    spark = (
        SparkSession.builder.master("local[1]")
        .appName("lakehouse-resolve-jars")
        .config("spark.jars.packages", ",".join(packages))
        .config("spark.jars.ivy", str(ivy_dir))
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )
    try:
        resolved = [u.removeprefix("file://") for u in spark.sparkContext.getConf().get("spark.jars", "").split(",") if u]
        for coordinates in standalone:
            spark.sparkContext._jsc.sc().addJar(f"ivy://{coordinates}?transitive=false")
            group, artifact, version = coordinates.split(":")
            retrieved = ivy_dir / "jars" / f"{group}_{artifact}-{version}.jar"  # Spark's Ivy retrieve pattern
            if not retrieved.exists():
                raise FileNotFoundError(f"{coordinates} did not resolve to {retrieved}")
            resolved.append(str(retrieved))
    finally:
        spark.stop()
    shipped = {_artifact_name(p.name) for p in _pyspark_jars_dir().glob("*.jar")}
    target = jars_dir()
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    kept: list[Path] = []
    for jar in resolved:
        if _artifact_name(jar, ivy=True) in shipped:
            continue
        link = target / Path(jar).name
        try:
            os.link(jar, link)
        except OSError:
            shutil.copy2(jar, link)
        kept.append(link)
    (target / MANIFEST).write_text("\n".join(packages + standalone) + "\n")
    return kept


def java_tool(name: str) -> str:
    """The path of a JDK tool (javac, jar, keytool): from JAVA_HOME, else the PATH; a one-line error without a JDK."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = os.path.join(java_home, "bin", name) if java_home else shutil.which(name)
    if not candidate or not os.path.exists(candidate):
        raise ConfigError(f"`{name}` not found (a JDK 17+ is needed, not only a JRE: apt-get install openjdk-17-jdk-headless)")
    return candidate


def compile_jar(sources: list[Path], target: Path) -> Path:
    """Compile Java `sources` against pyspark's jars into the jar `target` (replaced whole, never half-written)."""
    classpath = str(_pyspark_jars_dir() / "*")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        classes = Path(tmp) / "classes"
        javac = [java_tool("javac"), "--release", "17", "-nowarn", "-cp", classpath, "-d", str(classes), *map(str, sources)]
        proc = subprocess.run(javac, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigError(f"javac failed on {sources[0].parent}: {(proc.stderr or proc.stdout).strip()[:1000]}")
        partial = Path(tmp) / target.name
        proc = subprocess.run([java_tool("jar"), "--create", "--file", str(partial), "-C", str(classes), "."],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigError(f"jar failed: {(proc.stderr or proc.stdout).strip()[:500]}")
        partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="resolve again even if the cache is complete")
    parser.add_argument("--local-fs", action="store_true", help=f"compile {LOCAL_FS_SOURCES}/*.java into {local_fs_jar()} instead")
    args = parser.parse_args(argv)
    if args.local_fs:
        print(f"compiled {compile_jar(sorted(LOCAL_FS_SOURCES.glob('*.java')), local_fs_jar())}")
        return 0
    if cached_jars() and not args.force:
        (jars_dir() / MANIFEST).touch()  # up to date: newer than what make compares it with
        print(f"JVM dependencies already in {jars_dir()} ({len(cached_jars())} jars)")
        return 0
    print(f"Resolving {', '.join(ALL_PACKAGES)} (once; cached in {CACHE_DIR}) ...", flush=True)
    jars = resolve()
    total = sum(j.stat().st_size for j in jars) / 1e6
    print(f"{len(jars)} jars ({total:.0f} MB) in {jars_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
