from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from lakehouse.errors import ConfigError, LakehouseError
from lakehouse.flows import quality


def test_shipped_rules_load() -> None:
    rules = quality.load_rules()
    assert {r.action for r in rules} <= set(quality.ACTIONS)
    assert any(r.name == "level_known" and r.action == "quarantine" for r in rules)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[events.x]\ncheck = "ts > 0"\naction = "explode"\n', "not one of"),
        ('[events.x]\ncheck = "ts > 0"\n', "exactly 'check' and 'action'"),
        ('[users.x]\ncheck = "1 = 1"\naction = "warn"\n', "known: events, songs"),
        ("[events.x\n", "not valid TOML"),
    ],
)
def test_bad_rule_files_are_clear(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "quality.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        quality.load_rules(path)


def test_quarantine_warn_and_fail(spark, tmp_path: Path) -> None:
    path = tmp_path / "quality.toml"
    path.write_text(
        '[events.len]\ncheck = "length >= 0"\naction = "quarantine"\n'
        '[events.lvl]\ncheck = "level IN (\'free\', \'paid\')"\naction = "warn"\n'
        '[events.never]\ncheck = "ts > 100"\naction = "fail"\n'
    )
    rules = quality.load_rules(path)
    rows = spark.createDataFrame(
        [(1, 200, 1.0, "free", "f1"), (2, 200, -1.0, "free", "f2"), (3, 200, None, "gold", "f3")],
        "id int, ts long, length double, level string, _source_file string",
    )
    flagged = quality.flag(rows, rules)
    assert quality.counts(flagged, rules) == {"len": 1, "lvl": 1, "never": 0}
    assertDataFrameEqual(quality.passing(flagged, rules).select("id"), spark.createDataFrame([(1,), (3,)], "id int"))
    bad = quality.quarantined(flagged, rules, "silver.events", "run-1", 4).select("file", "reason", "batch_id")
    assertDataFrameEqual(bad, spark.createDataFrame([("f2", "rule len: length >= 0", 4)], "file string, reason string, batch_id long"))
    quality.enforce({"len": 1, "lvl": 1, "never": 0}, rules)
    with pytest.raises(LakehouseError, match="never \\(2 rows\\)"):
        quality.enforce({"never": 2}, rules)
