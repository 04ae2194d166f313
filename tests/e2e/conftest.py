"""Warehouses built once per suite, shared by the tests that read them: the real landing data's, and generated ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from lakehouse.config import Settings
from lakehouse.generate import GenerateSpec, generate

from .helpers import REAL_DATA, Built, run


def _build(spark, base_settings: Settings, landing: Path, warehouse: Path) -> Built:
    """The warehouse of one incremental run over `landing`."""
    settings = dataclasses.replace(base_settings, source=f"file:{landing.resolve()}", warehouse=f"file:{warehouse.resolve()}")
    return Built(landing, settings, run(spark, settings))


@pytest.fixture(scope="session")
def real_warehouse(spark, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Built]:
    """`real_warehouse("small")`: the warehouse of ../shared/data/sparkify/small, built on first use (skips when absent)."""
    built: dict[str, Built] = {}

    def get(copy: str) -> Built:
        root = REAL_DATA / copy
        if not root.is_dir():
            pytest.skip(f"real data not present at {root}")
        if copy not in built:
            built[copy] = _build(spark, base_settings, root, tmp_path_factory.mktemp(f"real-{copy}") / "warehouse")
        return built[copy]

    return get


@pytest.fixture(scope="session")
def generated_warehouse(spark, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Callable[[GenerateSpec], Built]:
    """`generated_warehouse(spec)`: a landing zone generated from `spec` and the warehouse of one incremental run
    over it, built on first use: modules that need the same data share one run (a test that writes copies it)."""
    built: dict[GenerateSpec, Built] = {}

    def get(spec: GenerateSpec) -> Built:
        if spec not in built:
            root = tmp_path_factory.mktemp("generated")
            generate(root / "landing", spec)
            built[spec] = _build(spark, base_settings, root / "landing", root / "warehouse")
        return built[spec]

    return get
