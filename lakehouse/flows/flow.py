"""What a flow is: one table, its inputs, its pure build and its write; and `Rows`, what its build reads.

A `Flow` is declared once (lakehouse.flows.declarations) and run two ways (lakehouse.flows.runner): in a
full run `Rows` gives each input whole; in an incremental run, the rows that changed since the flow's
watermark (Change Data Feed), and the flow's table as it stands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from lakehouse import erasure
from lakehouse import tables as T
from lakehouse.flows import silver


# ------------------------------------------------------------------------------ write strategies
@dataclass(frozen=True)
class Upsert:
    """MERGE on the table's key: insert new keys; update a matched row when `when` holds (SQL over t and s).

    `when` None: when any column differs. `ranges`: columns whose min/max over the batch bound the target
    rows the MERGE looks at (Delta skips files and partitions outside them). `compare_first`: drop rows
    equal to the table's before merging, and skip the MERGE when none is left (for small tables).
    """

    when: str | None = None
    ranges: tuple[str, ...] = ()
    compare_first: bool = False


@dataclass(frozen=True)
class InsertNew:
    """MERGE on the table's key: insert the keys the table does not have; never update."""

    ranges: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplaceKeys:
    """The table's rows whose `scope` columns are in the batch's scope become the batch's rows (insert, update, delete)."""

    scope: tuple[str, ...]


Strategy = Upsert | InsertNew | ReplaceKeys


@dataclass(frozen=True)
class Batch:
    """What a flow writes: rows, and (ReplaceKeys) the keys whose rows they replace, including keys left with none."""

    rows: DataFrame
    scope: DataFrame | None = None


@dataclass(frozen=True)
class Flow:
    """One table: built from `inputs` by `build`, written with `write` (incremental) or overwritten (full)."""

    target: T.Table
    inputs: tuple[T.Table, ...]
    build: Callable[[Rows], Batch | None]
    write: Strategy
    quality: str | None = None  # the section of conf/quality.toml checked before writing
    reads: tuple[T.Table, ...] = ()  # read as they stand, not followed by a watermark (Rows refuses undeclared reads)

    @property
    def name(self) -> str:
        return self.target.qualified


# ------------------------------------------------------------------------------ what a flow reads
class Rows:
    """A flow's view of its inputs in this run (see lakehouse.flows.declarations)."""

    def __init__(self, wh: T.Warehouse, flow: Flow, full: bool, marks: dict[str, int], versions: dict[str, int]) -> None:
        self.wh = wh
        self.flow = flow
        self.full = full
        self.marks = marks
        self.versions = versions
        self._kept: dict[str, DataFrame] = {}

    def keep(self, name: str, df: DataFrame) -> DataFrame:
        """`df` computed once for this flow (it is used more than once), released when the flow ends."""
        if name not in self._kept:
            self._kept[name] = df.persist()
        return self._kept[name]

    def release(self) -> None:
        for df in self._kept.values():
            df.unpersist()
        self._kept.clear()

    @property
    def incremental(self) -> bool:
        return not self.full

    def changed(self, table: T.Table) -> bool:
        """Whether `table` has versions this flow has not read (always, in a full run)."""
        return self.full or self.versions[table.qualified] > self.marks[table.qualified]

    def _declared(self, table: T.Table) -> None:
        """A flow reads only what it declares: its inputs, the tables it `reads`, and itself."""
        if table.qualified not in self.versions and table not in self.flow.reads and table is not self.flow.target:
            raise AssertionError(f"flow {self.flow.name} reads {table.qualified}, which it does not declare (inputs or reads)")

    def current(self, table: T.Table) -> DataFrame:
        """The table as it stands, at a pinned version (an input: the version this run records as read)."""
        self._declared(table)
        version = self.versions.get(table.qualified)
        return self.wh.read(table, self.wh.version(table) if version is None else version)

    def new(self, table: T.Table, preimages: bool = False) -> DataFrame:
        """Incremental: the rows inserted or updated since the watermark (with `preimages`, also their old values).

        Full: the whole table.
        """
        if self.full:
            return self.current(table)
        if not self.changed(table):
            return self._empty(table)
        kinds = ("insert", "update_postimage", "update_preimage") if preimages else ("insert", "update_postimage")
        return self._changes(table).where(F.col("_change_type").isin(*kinds)).select(*table.schema.fieldNames())

    def latest(self, table: T.Table) -> DataFrame:
        """Incremental: the current row of each key that changed since the watermark. Full: the whole table."""
        if self.full:
            return self.current(table)
        if not self.changed(table):
            return self._empty(table)
        changes = self._changes(table).where(F.col("_change_type").isin("insert", "update_postimage"))
        return silver.latest_per_key(changes, table.key, [F.col("_commit_version").desc()]).select(*table.schema.fieldNames())

    def previous(self) -> DataFrame:
        """The flow's own table before this run writes it (empty in a full run: it is rebuilt).

        Read once per flow and kept (the flows that read it use it several times, and each filtered read of a
        Delta table costs a Spark job to list its files), at its version: after a MERGE, Delta re-plans every
        kept query over the table as it stands, listing files again for each.
        """
        if self.full:
            return self._empty(self.flow.target)
        return self.keep("previous", self.wh.read(self.flow.target, self.wh.version(self.flow.target)))

    def narrow(self, df: DataFrame, keys: DataFrame) -> DataFrame:
        """Incremental: the rows of `df` whose `keys` columns are among `keys`'s rows. Full: `df` (every key is affected)."""
        return df if self.full else df.join(F.broadcast(keys), keys.columns, "left_semi")

    def _changes(self, table: T.Table) -> DataFrame:
        """The input's Change Data Feed since the watermark (without forgotten users), read once per flow."""
        changes = self.wh.changes(table, self.marks[table.qualified], self.versions[table.qualified])
        # Rows of forgotten users in versions written before `forget` (a watermark behind it) stay forgotten.
        return self.keep(f"changes:{table.qualified}", erasure.drop_changes(table, changes, erasure.Forgotten(self.wh).ids()))

    def _empty(self, table: T.Table) -> DataFrame:
        return self.wh.spark.createDataFrame([], table.schema)
