"""Data-quality rules on silver, declared in conf/quality.toml: check, then quarantine, warn or fail."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.config import conf_dir
from lakehouse.errors import ConfigError, LakehouseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ACTIONS = ("quarantine", "warn", "fail")
TABLES = ("events", "songs")


@dataclass(frozen=True)
class Rule:
    table: str
    name: str
    check: str
    action: str

    @property
    def column(self) -> str:
        return f"_rule_{self.name}"

    @property
    def reason(self) -> str:
        return f"rule {self.name}: {' '.join(self.check.split())}"


def rules_file() -> Path:
    return Path(os.environ.get("LAKEHOUSE_QUALITY_FILE", conf_dir() / "quality.toml"))


def load_rules(path: Path | None = None) -> list[Rule]:
    """Rules from the TOML file (none when it does not exist); clear errors for bad entries."""
    path = path or rules_file()
    if not path.exists():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    rules = []
    for table, entries in data.items():
        if table not in TABLES or not isinstance(entries, Mapping):
            raise ConfigError(f"{path}: [{table}] is not a table with rules (known: {', '.join(TABLES)})")
        for name, spec in entries.items():
            if not isinstance(spec, Mapping) or set(spec) != {"check", "action"}:
                raise ConfigError(f"{path}: rule {table}.{name} needs exactly 'check' and 'action'")
            if spec["action"] not in ACTIONS:
                raise ConfigError(f"{path}: rule {table}.{name}: action {spec['action']!r} is not one of {', '.join(ACTIONS)}")
            rules.append(Rule(table, name, str(spec["check"]), str(spec["action"])))
    return rules


def flag(df: DataFrame, rules: list[Rule]) -> DataFrame:
    """Add one boolean column per rule: TRUE when the row breaks it (a NULL check passes)."""
    for rule in rules:
        try:
            broken = ~F.coalesce(F.expr(rule.check).cast("boolean"), F.lit(True))
        except Exception as exc:
            raise ConfigError(f"rule {rule.table}.{rule.name}: bad check {rule.check!r} ({str(exc).splitlines()[0]})") from None
        df = df.withColumn(rule.column, broken)
    return df


def count_columns(rules: list[Rule]) -> list[Column]:
    """One aggregate per rule: rows breaking it (for `agg` or `observe`)."""
    return [F.count_if(F.col(r.column)).alias(r.name) for r in rules]


def counts(flagged: DataFrame, rules: list[Rule]) -> dict[str, int]:
    """Rows breaking each rule (one pass)."""
    if not rules:
        return {}
    row = flagged.agg(*count_columns(rules)).head()
    assert row is not None
    return {r.name: int(row[r.name] or 0) for r in rules}


def enforce(found: dict[str, int], rules: list[Rule]) -> None:
    """Stop the run when a 'fail' rule is broken."""
    broken = [f"{r.name} ({found[r.name]} rows)" for r in rules if r.action == "fail" and found.get(r.name)]
    if broken:
        raise LakehouseError("data-quality rule(s) set to fail were broken: " + ", ".join(broken))


def passing(flagged: DataFrame, rules: list[Rule]) -> DataFrame:
    """Rows that break no quarantine rule, without the rule columns."""
    out = flagged
    for rule in rules:
        if rule.action == "quarantine":
            out = out.where(~F.col(rule.column))
    return out.drop(*[r.column for r in rules])


def quarantined(flagged: DataFrame, rules: list[Rule], source: str, run_id: str, batch_id: int) -> DataFrame:
    """Rows that break a quarantine rule, as bronze.quarantine rows (reason: the first rule broken)."""
    blocking = [r for r in rules if r.action == "quarantine"]
    if not blocking:
        return flagged.limit(0).select(
            F.lit(source).alias("source"), F.lit("").alias("file"), F.lit("").alias("raw"), F.lit("").alias("reason"),
            F.current_timestamp().alias("quarantined_at"), F.lit(batch_id).cast("long").alias("batch_id"),
            F.lit(run_id).alias("run_id"))
    reason = F.coalesce(*[F.when(F.col(r.column), F.lit(r.reason)) for r in blocking])
    data_cols = [c for c in flagged.columns if not c.startswith("_rule_")]
    return flagged.where(reason.isNotNull()).select(
        F.lit(source).alias("source"),
        F.col("_source_file").alias("file"),
        F.to_json(F.struct(*data_cols)).alias("raw"),
        reason.alias("reason"),
        F.current_timestamp().alias("quarantined_at"),
        F.lit(batch_id).cast("long").alias("batch_id"),
        F.lit(run_id).alias("run_id"),
    )
