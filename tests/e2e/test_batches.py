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
    # Every file lands in a random one of three batches. Seed 1 lands days 1 and 3 first, day 4 next,
    # day 2 last (out of order), with songs spread over all three (songs arriving after their plays).
    rng = random.Random(seed)
    batches: list[list[Path]] = [[], [], []]
    for f in sorted(generated.rglob("*.json")):
        batches[rng.randrange(3)].append(f)

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
