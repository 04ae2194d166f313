"""Warehouses built once per suite, shared by the tests that read them: the real landing data's, and generated ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from lakehouse.config import Settings
from lakehouse.generate import GenerateSpec, generate

from .helpers import REAL_DATA, Built, run


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


@pytest.fixture(scope="session")
def generated_warehouse(spark, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Callable[[GenerateSpec], Built]:
    """`generated_warehouse(spec)`: a landing zone generated from `spec` and the warehouse of one incremental run
    over it, built on first use: modules that need the same data share one run (a test that writes copies it)."""
    built: dict[GenerateSpec, Built] = {}

    def get(spec: GenerateSpec) -> Built:
        if spec not in built:
            root = tmp_path_factory.mktemp("generated")
            landing, warehouse = root / "landing", root / "warehouse"
            generate(landing, spec)
            settings = dataclasses.replace(base_settings, source=f"file:{landing.resolve()}", warehouse=f"file:{warehouse.resolve()}")
            built[spec] = Built(landing, settings, run(spark, settings))
        return built[spec]

    return get
