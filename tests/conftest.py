"""One local SparkSession per test process (UI off, UTC, few shuffle partitions, Delta).

`make test` runs the suite in two pytest-xdist workers (`-n 2 --dist loadscope`), each module whole on one of them
(its module-scoped server or warehouse built once), the modules that read one shared warehouse together, the longest
first so that both workers finish about together. `pytest` alone runs everything in one process, as before.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.config import Settings, load_settings


@pytest.fixture(scope="session")
def base_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("lakehouse")
    settings = load_settings("local", {"source": str(root / "landing"), "warehouse": str(root / "warehouse")}, environ={})
    # A test process's JVM runs for minutes: there C2 wins, alone (75 s against 86 s with C1 only) and as one of two
    # workers (the suite 1,018.9 s against 1,120.5 s with C1 only, stop 42); with less inlining (`lean`) it compiles
    # a third as much for the same work (lakehouse.session.LEAN_INLINING).
    return dataclasses.replace(settings, spark_master="local[2]", spark_shuffle_partitions=2, spark_driver_memory="2g",
                               spark_driver_jit="lean")


@pytest.fixture(scope="session")
def spark(base_settings: Settings) -> Iterator[object]:
    from lakehouse.session import build_session

    session = build_session(base_settings, app_name="lakehouse-tests")
    yield session
    session.stop()


@pytest.fixture
def make_settings(base_settings: Settings, tmp_path: Path):
    """Settings for a fresh landing zone and warehouse under tmp_path."""

    def make(source: Path | str | None = None, warehouse: Path | str | None = None) -> Settings:
        src = source if source is not None else tmp_path / "landing"
        wh = warehouse if warehouse is not None else tmp_path / "warehouse"
        return dataclasses.replace(base_settings, source=f"file:{Path(src).resolve()}", warehouse=f"file:{Path(wh).resolve()}")

    return make


# Modules that read one session-scoped warehouse (tests/e2e/conftest.py) run on one worker, so it is built once.
SHARED_WAREHOUSE_MODULES = {"test_cli", "test_real_data", "test_erasure", "test_scheduling"}
SHARED_WAREHOUSES = "shared-warehouses"  # their group's name
# The longest groups first (by `--durations=0` at stop 41), so that the two workers end about together;
# the modules not named here (a minute or less each, together) follow in the order collected.
LONGEST_FIRST = [SHARED_WAREHOUSES, "test_dbt", "test_batches", "test_bronze_record", "test_thrift", "test_thrift_security",
                 "test_cluster", "test_crash", "test_s3", "test_landing_discovery", "test_incremental"]


def _group(nodeid: str) -> str:
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")
    return SHARED_WAREHOUSES if module in SHARED_WAREHOUSE_MODULES else module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a pytest-xdist worker: the longest groups first (the controller hands them out in this order); a module
    that reads a shared warehouse outside its group is named in a warning (the other worker builds it once more)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    readers = {item.path.stem for item in items if {"real_warehouse", "generated_warehouse"} & set(item.fixturenames)}
    if stray := sorted(readers - SHARED_WAREHOUSE_MODULES):
        warnings.warn(pytest.PytestWarning(f"{', '.join(stray)} read a shared warehouse outside its group: add them to "
                                           f"SHARED_WAREHOUSE_MODULES in {__file__}"), stacklevel=1)
    rank = {group: i for i, group in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item.nodeid), len(rank)))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist (a pinned dev dependency)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadscope`: each module whole on one worker, the modules of one shared warehouse together, in the
    order collected (pytest 9's node ids cannot carry xdist's `@group` suffix, so `loadgroup` cannot group them)."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _group(nodeid)

    config.option.loadscopereorder = False
    return ModuleGroups(config, log)
