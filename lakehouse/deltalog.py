"""The Delta log read without a JVM: what the operator's metadata commands need (`runs`, `history`, `dashboard`),
and the row of a run that had nothing to do appended to ops.runs (lakehouse.nothing_new).

delta-rs (the `deltalake` package) reads a table's log, its per-file statistics and small tables in a fraction of
a second, where a SparkSession takes seconds to start. Its process can abort when the interpreter shuts down
(SIGABRT after the output is complete: delta-io/delta-rs#2184), so it never runs in the caller's process: `read`
runs a batch of requests in a child Python process that writes its answers, flushes and leaves with `os._exit`;
the caller takes the answers when they are complete, whatever the child's exit code.

Values come back as plain Python: timestamps naive in UTC (as PySpark gives them with the session in UTC).
"""

from __future__ import annotations

import datetime
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lakehouse.errors import LakehouseError, TableNotFound

CHILD_TIMEOUT_S = 300


@dataclass(frozen=True)
class Request:
    """One read: `kind` is a method of `_Reader` (facts, rows, history, query), `args` its arguments."""

    kind: str
    args: tuple[Any, ...] = ()


@dataclass
class Facts:
    """A table as its log describes it (no data file is opened): `detail` has the keys of Spark's DESCRIBE DETAIL
    that the log answers (description, lastModified, numFiles, sizeInBytes, partitionColumns, tableFeatures, properties)."""

    version: int
    detail: dict[str, Any]
    rows: int | None  # sum of the files' numRecords statistics (None when a file has none)
    columns: list[tuple[str, str, str]]  # name, type, comment
    history: list[dict[str, Any]] = field(default_factory=list)  # newest first: version, timestamp, operation, ...
    max_values: dict[str, Any] = field(default_factory=dict)  # per column, the largest per-file maximum


def storage(uri: str, environ: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """A table URI as delta-rs opens it, with its storage options (S3: endpoint and region from the environment)."""
    env = os.environ if environ is None else environ
    if uri.startswith("file:"):
        return uri[len("file:"):], {}
    if uri.startswith("s3a://"):
        options = {"AWS_S3_ALLOW_UNSAFE_RENAME": "true"}
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            options.update({"AWS_ENDPOINT_URL": endpoint, "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
                            "AWS_ALLOW_HTTP": str(endpoint.startswith("http://")).lower()})
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        options["AWS_REGION"] = region or "us-east-1"
        return "s3://" + uri[len("s3a://"):], options
    return uri, {}


def read(requests: Sequence[Request]) -> list[Any]:
    """Answer `requests` in one child process (see the module's docstring); a failed read raises its error here."""
    proc = subprocess.run([sys.executable, "-c", "from lakehouse.deltalog import _child; _child()"],
                          input=pickle.dumps(list(requests)), capture_output=True, timeout=CHILD_TIMEOUT_S, check=False)
    try:
        answers = pickle.loads(proc.stdout)
    except Exception:
        last = (proc.stderr.decode(errors="replace").strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise LakehouseError(f"reading the Delta log failed: {last[:300]}") from None
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return list(answers)


def append(uri: str, rows: list[dict[str, Any]]) -> None:
    """Append `rows` (plain Python values; timestamps naive in UTC) to the Delta table at `uri`, in one commit through
    delta-rs in a child process. For a small table of flat columns, with the warehouse's run lock held (ops.runs)."""
    read([Request("append", (uri, rows))])


def _child() -> None:
    """The child's side of `read`: requests on stdin, answers (or the error of each) pickled on stdout."""
    requests: list[Request] = pickle.loads(sys.stdin.buffer.read())
    reader = _Reader()
    answers: list[Any] = []
    for request in requests:
        try:
            answers.append(getattr(reader, request.kind)(*request.args))
        except LakehouseError as exc:
            answers.append(exc)
        except Exception as exc:  # delta-rs errors carry no exit code: one line for the operator
            answers.append(LakehouseError(f"{request.kind} {request.args[0] if request.args else ''}: "
                                          f"{str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__}"))
    sys.stdout.buffer.write(pickle.dumps(answers))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # before delta-rs's runtime is torn down at interpreter shutdown


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime.datetime) and value.tzinfo is not None:
        return value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


def _from_millis(ms: int | None) -> datetime.datetime | None:
    if ms is None:
        return None
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).replace(tzinfo=None)


def _pylist(table: Any) -> list[dict[str, Any]]:
    """An Arrow table (arro3) as a list of rows."""
    names = list(table.column_names)
    columns = [[_naive_utc(v) for v in table.column(n).to_pylist()] for n in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)] if names else []


def _simple_type(spec: Any) -> str:
    """A delta-rs schema type (its JSON form) as Spark's simpleString names it."""
    if isinstance(spec, str):
        return {"integer": "int", "long": "bigint", "short": "smallint", "byte": "tinyint"}.get(spec, spec)
    kind = spec.get("type")
    if kind == "struct":
        return "struct<" + ",".join(f"{f['name']}:{_simple_type(f['type'])}" for f in spec["fields"]) + ">"
    if kind == "array":
        return f"array<{_simple_type(spec['elementType'])}>"
    if kind == "map":
        return f"map<{_simple_type(spec['keyType'])},{_simple_type(spec['valueType'])}>"
    return str(kind)


class _Reader:
    """The child's reads; each method answers one Request kind."""

    def __init__(self) -> None:
        self._tables: dict[str, Any] = {}

    def _open(self, uri: str) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        if uri not in self._tables:
            path, options = storage(uri)
            try:
                self._tables[uri] = DeltaTable(path, storage_options=options or None)
            except TableNotFoundError:
                raise TableNotFound(f"no Delta table at {uri}") from None
        return self._tables[uri]

    def exists(self, uri: str) -> bool:
        try:
            self._open(uri)
        except TableNotFound:
            return False
        return True

    def history(self, uri: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits newest first: version, timestamp, operation, operationParameters, operationMetrics, userMetadata."""
        commits = self._open(uri).history(limit)
        return [{"version": int(c["version"]), "timestamp": _from_millis(c.get("timestamp")), "operation": c.get("operation"),
                 "operationParameters": c.get("operationParameters") or {}, "operationMetrics": c.get("operationMetrics") or {},
                 "userMetadata": c.get("userMetadata")} for c in commits]

    def facts(self, uri: str, history: int = 0, max_of: tuple[str, ...] = ()) -> Facts | None:
        """Version, files, size, rows (per-file statistics), schema, properties, features; None when there is no table."""
        if not self.exists(uri):
            return None
        table = self._open(uri)
        meta, protocol = table.metadata(), table.protocol()
        adds = table.get_add_actions(flatten=True)
        names = set(adds.column_names)
        records = adds.column("num_records").to_pylist() if "num_records" in names else []
        sizes = adds.column("size_bytes").to_pylist() if "size_bytes" in names else []
        maxima = {}
        for column in max_of:
            values = [v for v in adds.column(f"max.{column}").to_pylist() if v is not None] if f"max.{column}" in names else []
            maxima[column] = _naive_utc(max(values)) if values else None
        schema = json.loads(table.schema().to_json())
        commits = self.history(uri, max(1, history))
        features = sorted(set(protocol.reader_features or []) | set(protocol.writer_features or []))
        detail = {"description": meta.description, "lastModified": commits[0]["timestamp"] if commits else None,
                  "numFiles": len(sizes), "sizeInBytes": int(sum(s or 0 for s in sizes)),
                  "partitionColumns": list(meta.partition_columns), "tableFeatures": features,
                  "properties": {str(k): str(v) for k, v in (meta.configuration or {}).items()}}
        return Facts(
            version=int(table.version()), detail=detail, rows=None if any(r is None for r in records) else int(sum(records)),
            columns=[(f["name"], _simple_type(f["type"]), str((f.get("metadata") or {}).get("comment", ""))) for f in schema["fields"]],
            history=commits[:history], max_values=maxima,
        )

    def append(self, uri: str, rows: list[dict[str, Any]]) -> None:
        """One commit of `rows`, typed by the table's own schema (strings, integers, doubles, booleans, timestamps)."""
        from arro3.core import Array, DataType, Table
        from deltalake import write_deltalake

        table = self._open(uri)
        epoch = datetime.datetime(1970, 1, 1)
        types = {"string": DataType.string(), "long": DataType.int64(), "integer": DataType.int32(),
                 "double": DataType.float64(), "boolean": DataType.bool()}
        arrays = []
        fields = json.loads(table.schema().to_json())["fields"]
        for f in fields:
            values = [row.get(f["name"]) for row in rows]
            if f["type"] == "timestamp":
                micros = [None if v is None else (_naive_utc(v) - epoch) // datetime.timedelta(microseconds=1) for v in values]
                arrays.append(Array(micros, DataType.int64()).cast(DataType.timestamp("us", tz="UTC")))
            elif isinstance(f["type"], str) and f["type"] in types:
                arrays.append(Array(values, types[f["type"]]))
            else:
                raise LakehouseError(f"append to {uri}: column {f['name']} of type {f['type']} is not supported")
        path, options = storage(uri)
        write_deltalake(path, Table.from_arrays(arrays, names=[f["name"] for f in fields]), mode="append",
                        storage_options=options or None)
        self._tables.pop(uri, None)

    def rows(self, uri: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
        """Every row of a (small) table, e.g. ops.runs."""
        select = ", ".join(f'"{c}"' for c in columns) if columns else "*"
        return self.query({"t": uri}, f"SELECT {select} FROM t")[1]

    def query(self, tables: dict[str, str], sql: str) -> tuple[list[str], list[dict[str, Any]]]:
        """A SQL query (DataFusion) over tables registered under the given names: (columns, rows)."""
        from deltalake import QueryBuilder

        builder = QueryBuilder()
        for name, uri in tables.items():
            builder = builder.register(name, self._open(uri))
        result = builder.execute(sql).read_all()
        return list(result.column_names), _pylist(result)
