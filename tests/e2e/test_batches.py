"""Property: any split of the landing files into batches, landed in any order, gives the gold tables of
one full rebuild over all of them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from lakehouse.generate import GenerateSpec, generate

from .helpers import gold_tables, land, run

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("seed", [1])
def test_random_batches_equal_full_rebuild(spark, make_settings, tmp_path: Path, seed: int) -> None:
    generated = tmp_path / "generated"
    generate(generated, GenerateSpec(songs=150, users=12, days=4, events_per_day=400, seed=100 + seed))
    files = sorted(p for p in generated.rglob("*.json"))
    rng = random.Random(seed)
    rng.shuffle(files)  # random order: late songs, days out of order
    cuts = sorted(rng.sample(range(1, len(files)), 2))
    batches = [files[: cuts[0]], files[cuts[0] : cuts[1]], files[cuts[1] :]]

    landing = tmp_path / "landing"
    incremental = make_settings(landing, tmp_path / "incremental")
    for batch in batches:
        land(batch, generated, landing)
        run(spark, incremental)

    full = make_settings(landing, tmp_path / "full")
    run(spark, full, "full")
    expected, got = gold_tables(spark, full), gold_tables(spark, incremental)
    for name in expected:
        assertDataFrameEqual(got[name], expected[name])
