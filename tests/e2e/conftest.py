"""Warehouses built once per suite from the real landing data, shared by the tests that read them."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lakehouse.config import Settings
from lakehouse.report import RunReport

from .helpers import REAL_DATA, run


@dataclasses.dataclass(frozen=True)
class Built:
    """A warehouse built by one incremental run over a real landing zone (read it; copy it to change it)."""

    root: Path  # the landing zone
    settings: Settings
    report: RunReport

    def copy(self, to: Path) -> Settings:
        """A copy of the warehouse at `to`, for a test that writes (its source is the same landing zone)."""
        shutil.copytree(self.settings.warehouse.removeprefix("file:"), to)
        return dataclasses.replace(self.settings, warehouse=f"file:{to.resolve()}")


@pytest.fixture(scope="session")
def real_warehouse(spark, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Built]:
    """`real_warehouse("small")`: the warehouse of ../shared/data/sparkify/small, built on first use (skips when absent)."""
    built: dict[str, Built] = {}

    def get(copy: str) -> Built:
        root = REAL_DATA / copy
        if not root.is_dir():
            pytest.skip(f"real data not present at {root}")
        if copy not in built:
            warehouse = tmp_path_factory.mktemp(f"real-{copy}") / "warehouse"
            settings = dataclasses.replace(base_settings, source=f"file:{root.resolve()}", warehouse=f"file:{warehouse.resolve()}")
            built[copy] = Built(root, settings, run(spark, settings))
        return built[copy]

    return get
