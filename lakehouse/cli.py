"""The `lakehouse` command line (see README for the contract)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table as RichTable

from lakehouse.config import Settings, load_settings
from lakehouse.errors import ConfigError, LakehouseError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger("lakehouse.cli")
stderr = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 150)


# ---------------------------------------------------------------------------------------- helpers
def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"source": getattr(args, "source", None), "warehouse": getattr(args, "warehouse", None)}
    if getattr(args, "port", None) is not None:
        overrides["thrift.port"] = args.port
    return load_settings(getattr(args, "env", None), overrides)


@contextlib.contextmanager
def _session(settings: Settings, app: str) -> Iterator[SparkSession]:
    """A SparkSession for one command, stopped afterwards.

    In a process that already runs one (a notebook, the test suite calling `main`), that session is used and left running.
    """
    from pyspark.sql import SparkSession

    from lakehouse.session import build_session

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    with stderr.status(f"starting Spark ({settings.spark_master})", spinner="dots"):
        spark = build_session(settings, app_name=app)
    try:
        yield spark
    finally:
        spark.stop()


def _status(message: str) -> Any:
    return stderr.status(message, spinner="dots")


def _warehouse(spark: SparkSession, settings: Settings) -> Any:
    from lakehouse.tables import Warehouse

    return Warehouse(spark, settings)


def _rows(df: DataFrame) -> tuple[list[str], list[dict[str, Any]]]:
    rows = [r.asDict(recursive=True) for r in df.collect()]
    return df.columns, rows


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "is_finite") or type(value).__name__ == "Decimal":
        return float(value)
    return value


def print_rows(columns: Sequence[str], rows: list[dict[str, Any]], fmt: str, title: str | None = None) -> None:
    """Print query results as a table, JSON lines (one object per row) or CSV on stdout."""
    if fmt == "json":
        for row in rows:
            sys.stdout.write(json.dumps(_jsonable(row), ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row[c] is None else _jsonable(row[c]) for c in columns])
    else:
        table = RichTable(title=title, title_justify="left", header_style="bold")
        for c in columns:
            table.add_column(c, overflow="fold")
        for row in rows:
            table.add_row(*["NULL" if row[c] is None else str(_jsonable(row[c])) for c in columns])
        Console(soft_wrap=False, width=max(120, Console().width)).print(table)
        if not rows:
            stderr.print("(no rows)")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------- commands
def cmd_generate(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from lakehouse.generate import GenerateSpec, generate

    try:
        start = datetime.date.fromisoformat(args.start)
    except ValueError:
        raise ConfigError(f"--start {args.start!r}: expected a date YYYY-MM-DD") from None
    try:
        spec = GenerateSpec(songs=args.songs, users=args.users, days=args.days,
                            events_per_day=args.events_per_day, start=start, seed=args.seed)
        from lakehouse.generate import validate_spec

        validate_spec(spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    started = time.perf_counter()
    writer = None
    out = args.out
    if out.startswith("s3a://") or out.startswith("s3://"):
        from lakehouse.storage import s3_writer

        writer = s3_writer(out)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=stderr, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"writing {stage}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        summary = generate(out, spec, progress=progress, writer=writer)
    stderr.print(
        f"generated {summary.song_files} song files and {summary.log_files} log files "
        f"({summary.events} events, {summary.next_song_events} NextSong) in {out} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


def cmd_upload(args: argparse.Namespace) -> int:
    """Copy a local landing zone to s3a://bucket/prefix (bucket created if missing; same-size objects skipped)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from lakehouse.storage import upload

    started = time.perf_counter()
    with Progress(TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=stderr, transient=True) as bar:
        task = bar.add_task("upload", total=None)
        summary = upload(args.src, args.to, progress=lambda done, total: bar.update(task, completed=done, total=total))
    stderr.print(
        f"uploaded {summary.uploaded} files ({summary.bytes_uploaded / 1e6:.1f} MB) to {args.to}, "
        f"skipped {summary.skipped} already there, in {time.perf_counter() - started:.1f}s"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.kind != "full" and (args.reingest or args.allow_missing_source):
        raise ConfigError("--reingest and --allow-missing-source go with `run full`")
    if args.allow_missing_source and not args.reingest:
        raise ConfigError("--allow-missing-source goes with --reingest (a plain `run full` never drops bronze rows)")
    if args.every is not None and not args.watch:
        raise ConfigError("--every goes with --watch")
    if args.watch:
        if args.kind != "incremental" or args.report_json is not None:
            raise ConfigError("--watch goes with `run incremental`, without --report-json (each cycle is a row of ops.runs)")
        from lakehouse.watch import DEFAULT_EVERY, parse_every

        return watch_pipeline(settings, parse_every(args.every) if args.every is not None else DEFAULT_EVERY)
    return run_pipeline(settings, args.kind, reingest=args.reingest, allow_missing_source=args.allow_missing_source,
                        report_json=args.report_json)


def run_pipeline(settings: Settings, kind: str, reingest: bool = False, allow_missing_source: bool = False,
                 report_json: Path | None = None, reconcile: bool = False) -> int:
    """Run the pipeline and print the end-of-run summary (shared by the CLI and the spark-submit jobs)."""
    from lakehouse.pipeline import Pipeline

    _preflight(settings, kind, reingest)
    stderr.print(f"[bold]lakehouse run {kind}[/] · source {settings.source} · warehouse {settings.warehouse}")
    report = None
    if kind == "incremental" and not reconcile:
        from lakehouse.nothing_new import run_if_nothing_new

        with _status("looking for new files (no Spark yet)"):
            report = run_if_nothing_new(settings)
    if report is None:
        with _session(settings, f"lakehouse-{kind}") as spark:
            report = Pipeline(spark, settings, status=_status).run(kind, reingest=reingest, allow_missing_source=allow_missing_source,
                                                                   reconcile=reconcile)
    _print_summary(report)
    if report_json is not None:
        write_report_json(report, report_json)
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    """An incremental run whose discovery also lists the whole landing zone and counts what it had missed."""
    return run_pipeline(_settings(args), "incremental", report_json=args.report_json, reconcile=True)


def setup_queue(args: argparse.Namespace) -> int:
    """`sources setup-queue`: wire the landing bucket's S3 event notifications to an SQS queue (no Spark)."""
    from lakehouse.record import queue
    from lakehouse.storage import split_s3a

    settings = _settings(args)
    bucket, _ = split_s3a(settings.source)
    url = queue.setup(settings.source, args.queue or f"lakehouse-landing-{bucket.replace('.', '-')}")
    stderr.print(f"{bucket}: *.json created or removed under {settings.source} now notifies {url}. To read it, set:")
    sys.stdout.write(f'discovery = "queue"\n\n[queue]\nurl = "{url}"\n')
    stderr.print("(in conf/<env>.toml, or LAKEHOUSE_DISCOVERY=queue LAKEHOUSE_QUEUE_URL=...); the next run lists once, then reads the queue")
    return 0


def _preflight(settings: Settings, kind: str, reingest: bool = False) -> None:
    """Before Spark starts: the landing zone, and on S3 the endpoint, credentials and buckets; each failure one line."""
    from lakehouse.pipeline import check_local_source

    # A plain `full` rebuilds from bronze: a landing zone that expired entirely is fine when bronze exists.
    check_local_source(settings.source, settings.warehouse if kind == "full" and not reingest else None)
    if settings.is_s3:
        from lakehouse import storage

        if settings.source.startswith("s3a://"):
            storage.preflight(settings.source, must_exist=True)
        if settings.warehouse.startswith("s3a://"):
            storage.preflight(settings.warehouse, must_exist=False)


def watch_pipeline(settings: Settings, every: float) -> int:
    """`run incremental --watch`: one warm session, a run whenever files land, until SIGTERM (exit 0 after the cycle)."""
    import threading

    from lakehouse.watch import Watch, stop_on_signals

    _preflight(settings, "incremental")
    stop = threading.Event()
    stop_on_signals(stop)
    stderr.print(f"[bold]lakehouse run incremental --watch[/] · source {settings.source} · warehouse {settings.warehouse} · every {every:g}s")
    with _session(settings, "lakehouse-watch") as spark:
        return Watch(spark, settings, every, stop, status=_status, on_run=_print_summary).run()


def write_report_json(report: Any, path: Path) -> None:
    """The run's ops.runs row as one JSON document, for schedulers and the benchmark."""
    document = {"run_id": report.run_id, "kind": report.kind, "status": report.status,
                "duration_s": round(report.duration_s, 3), "rows_written": report.rows_written(),
                "versions_written": report.versions_written(), "details": report.details()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def _print_summary(report: Any) -> None:
    totals = report.totals()
    table = RichTable(title=f"run {report.run_id} ({report.kind}) {report.status} in {report.duration_s:.1f}s",
                      title_justify="left", header_style="bold")
    for col in ("table", "rows written", "version"):
        table.add_column(col, justify="right" if col != "table" else "left")
    rows, versions = report.rows_written(), report.versions_written()
    for name in versions:
        table.add_row(name, str(rows.get(name, 0)), str(versions[name]))
    stderr.print(table)
    for source, c in report.sources.items():
        stderr.print(f"  {source}: {c.files} new files, {c.rows_in} rows in = {c.loaded} loaded + {c.quarantined} quarantined")
    stderr.print("  time per layer: " + ", ".join(f"{k} {v:.1f}s" for k, v in report.layer_seconds.items()))
    for line in report.drift_lines():
        stderr.print(f"  [yellow]{escape(line)}[/]")
    if totals.quarantined:
        stderr.print(f"  [yellow]{totals.quarantined} rows quarantined[/]: lakehouse sql \"SELECT reason, count(*) FROM bronze.quarantine GROUP BY reason\"")


@contextlib.contextmanager
def _spark_for(args: argparse.Namespace, app: str, register: str | None = None) -> Iterator[Any]:
    """A session on the warehouse of `args`; stopped afterwards.

    `register`: SQL text whose `layer.name` tables are made resolvable (every table when it names none).
    """
    from lakehouse import tables as T

    settings = _settings(args)
    with _session(settings, app) as spark:
        wh = _warehouse(spark, settings)
        named = T.named_in(register) if register is not None else []
        if register is not None and not wh.register(named or T.ALL_TABLES):
            from lakehouse.errors import TableNotFound

            what = ", ".join(t.qualified for t in named) if named else "no tables"
            raise TableNotFound(f"the warehouse {settings.warehouse} holds {what if not named else 'none of ' + what} yet "
                                "(run `lakehouse run incremental` first)")
        yield wh


def cmd_sql(args: argparse.Namespace) -> int:
    with _spark_for(args, "lakehouse-sql", register=args.query) as wh:
        columns, rows = _rows(wh.spark.sql(args.query))
    print_rows(columns, rows, args.format)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Print the analytics team's questions (lakehouse/sql/*.sql) answered from gold."""
    from lakehouse.sql import questions

    asked = questions()
    with _spark_for(args, "lakehouse-report", register="\n".join(q.query for q in asked)) as wh:
        for question in asked:
            columns, rows = _rows(wh.spark.sql(question.query))
            if args.format == "table" and columns[0] in ("hour", "weekday") and "plays" in columns:
                from lakehouse.dashboard.charts import with_bars

                columns, rows = [*columns, "bar"], with_bars(rows, "plays")
            print_rows(columns, rows, args.format, title=question.title)
    return 0


def _from_log(settings: Settings, table: Any, kind: str, *args: Any) -> Any:
    """One read of `table`'s Delta log without a JVM (lakehouse.deltalog); a missing table is the usual one-line error."""
    from lakehouse import deltalog
    from lakehouse.errors import TableNotFound

    try:
        (answer,) = deltalog.read([deltalog.Request(kind, (settings.table_path(table.layer, table.name), *args))])
    except TableNotFound:
        raise TableNotFound(f"table {table.qualified} does not exist in {settings.warehouse} (run `lakehouse run` first)") from None
    return answer


def cmd_history(args: argparse.Namespace) -> int:
    """A table's versions, newest first, from its Delta log (no Spark)."""
    from lakehouse.tables import lookup

    table = lookup(args.table)
    commits = _from_log(_settings(args), table, "history", args.limit)
    columns = ["version", "timestamp", "operation", "parameters", "metrics"]
    rows = [{"version": c["version"], "timestamp": c["timestamp"], "operation": c["operation"],
             "parameters": json.dumps(c["operationParameters"], separators=(",", ":")),
             "metrics": json.dumps(c["operationMetrics"], separators=(",", ":"))} for c in commits]
    print_rows(columns, rows, args.format)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from lakehouse.operations import catalog
    from lakehouse.tables import lookup

    lookup(args.table)
    if args.timestamp is not None:
        catalog.parse_timestamp(args.timestamp)
    with _spark_for(args, "lakehouse-restore") as wh:
        before, after = catalog.restore(wh, args.table, args.version, args.timestamp)
    target = f"version {args.version}" if args.version is not None else f"timestamp {args.timestamp}"
    stderr.print(f"restored {args.table} to {target}: new version {after} (undo: lakehouse restore {args.table} --version {before})")
    return 0


RUN_COLUMNS = ["run_id", "kind", "status", "started_at", "duration_s", "files_in", "rows_in", "rows_loaded",
               "rows_quarantined", "rows_written", "versions_written", "error"]


def cmd_runs(args: argparse.Namespace) -> int:
    """The latest runs of ops.runs, read with delta-rs (no Spark): the table is small and the command often run."""
    from lakehouse import tables as T

    rows = _from_log(_settings(args), T.RUNS, "rows", RUN_COLUMNS)
    rows = sorted(rows, key=lambda r: r["started_at"] or datetime.datetime.min, reverse=True)[:max(args.limit, 0)]
    columns = list(RUN_COLUMNS)
    if args.format == "table":
        columns, rows = _flag_runs(columns, rows)
    print_rows(columns, rows, args.format)
    return 0


def _flag_runs(columns: list[str], rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """A `flag` column first: FAILED runs and quarantine spikes stand out in the terminal."""
    from lakehouse.dashboard.snapshot import parse_run, quarantine_spikes

    spikes = quarantine_spikes([parse_run(r) for r in rows])
    flagged = [{"flag": " ".join(f for f, on in (("[bold red]✗ FAILED[/]", r["status"] == "failed"),
                                                  ("[yellow]▲ quarantine spike[/]", r["run_id"] in spikes)) if on), **r} for r in rows]
    return ["flag", *columns], flagged


def cmd_dashboard(args: argparse.Namespace) -> int:
    """Write the static status site (lakehouse.dashboard) for the warehouse and print its path (no Spark: delta-rs)."""
    from lakehouse.dashboard.site import build

    started = time.perf_counter()
    with _status("dashboard: reading the Delta logs, runs and quarantine"):
        index = build(_settings(args), args.out)
    size = sum(f.stat().st_size for f in index.parent.rglob("*") if f.is_file())
    stderr.print(f"dashboard written in {time.perf_counter() - started:.1f}s ({size / 1024:.0f} KB)")
    sys.stdout.write(f"{index.resolve()}\n")
    return 0


def cmd_maintain(args: argparse.Namespace) -> int:
    from lakehouse.operations.catalog import check_retention
    from lakehouse.pipeline import Pipeline

    check_retention(args.retain_hours)
    with _spark_for(args, "lakehouse-maintain") as wh:
        results = Pipeline(wh.spark, wh.settings, status=_status).maintain(args.retain_hours)
        print_rows(list(results[0].keys()) if results else ["table"], results, "table", title="maintenance")
        if args.purge_forgotten:
            from lakehouse.erasure import Forgotten
            from lakehouse.operations.forget import Eraser

            ids = Forgotten(wh).ids()
            result = Eraser(wh.spark, wh.settings, status=_status).run(ids, purge_old=True) if ids else None
            for line in result.lines() if result else ["the erasure list is empty: nothing to purge"]:
                stderr.print(escape(line))
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Erase users from every layer (lakehouse.operations.forget); --purge: from old versions too; --dry-run: count only."""
    from lakehouse.erasure import parse_user_ids
    from lakehouse.operations.forget import Eraser

    ids = parse_user_ids(args.user_id)  # a malformed id fails before Spark starts
    with _spark_for(args, "lakehouse-forget") as wh:
        result = Eraser(wh.spark, wh.settings, status=_status).run(ids, purge_old=args.purge, dry_run=args.dry_run)
    for line in result.lines():
        stderr.print(escape(line))
    return 0


def cmd_manifest(args: argparse.Namespace) -> int:
    """Generate symlink manifests for the gold tables (kept current from now on) and print the DDL."""
    from lakehouse.operations import catalog

    with _spark_for(args, "lakehouse-manifest") as wh:
        done = catalog.manifests(wh)
    for item in done:
        stderr.print(f"manifest for {item['table']}: {item['manifest']}")
        sys.stdout.write(item["ddl"] + "\n\n")
    stderr.print("Delta now rewrites these manifests on every commit; run the DDL above in Athena or Redshift Spectrum.")
    return 0


def cmd_thrift(args: argparse.Namespace) -> int:
    from lakehouse.endpoint import server

    overrides = {"warehouse": args.warehouse, "thrift.port": args.port, "thrift.host": args.host, "thrift.auth": args.auth,
                 "thrift.password_file": args.password_file, "thrift.keystore": args.keystore, "thrift.tls": args.tls}
    settings = load_settings(args.env, overrides)
    if args.name is not None and args.action != "add-user":
        raise ConfigError(f"thrift {args.action} takes no name (only `thrift add-user NAME` does)")
    return server.command(settings, args.action, args.name)


def cmd_changes(args: argparse.Namespace) -> int:
    """Print a table's Change Data Feed from --since-version on (inserts, update post-images, deletes)."""
    from lakehouse.operations import catalog
    from lakehouse.tables import lookup

    table = lookup(args.table)
    catalog.check_change_feed(table, args.since_version)
    with _spark_for(args, "lakehouse-changes") as wh:
        df, latest = catalog.changes(wh, table, args.since_version, args.preimages)
        columns, rows = _rows(df)
    print_rows(columns, rows, args.format)
    if latest < args.since_version:
        stderr.print(f"{table.qualified} is at version {latest}: no changes yet; next time: --since-version {args.since_version}")
    else:
        stderr.print(f"{len(rows)} changed rows of {table.qualified} versions {args.since_version}..{latest}; "
                     f"next time: --since-version {latest + 1}")
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    """Check a run's ops.runs row before the data is announced: exit 0 when every check passes, 2 when one fails (no Spark:
    the row is read from the Delta log)."""
    from lakehouse import tables as T
    from lakehouse.operations import gate

    for name, value in (("--max-quarantined", args.max_quarantined), ("--max-violations", args.max_violations)):
        if not 0 <= value <= 1:
            raise ConfigError(f"{name} {value}: a share between 0 and 1 (0.01 = 1 % of the run's rows in)")
    row = gate.run_row(_from_log(_settings(args), T.RUNS, "rows", gate.COLUMNS), args.run_id)
    results = gate.checks(row, args.max_quarantined, args.max_violations)
    for check in results:
        mark = "[green]ok[/]  " if check.passed else "[red]FAIL[/]"
        stderr.print(f"{mark} {check.name:<10} {escape(check.detail)}")
    failed = [c.name for c in results if not c.passed]
    stderr.print(f"gate: run {row['run_id']} ({row['kind']}) " + (f"[red]failed: {', '.join(failed)}[/]" if failed else "[green]passed[/]"))
    return 2 if failed else 0


def cmd_sources(args: argparse.Namespace) -> int:
    """`sources pending`: what landed and is not yet in bronze, without Spark. Exit 0: pending, 1: nothing pending, 2: error.

    `sources setup-queue`: lakehouse.cli.setup_queue.
    """
    from lakehouse.pipeline import check_local_source
    from lakehouse.record.pending import pending

    if args.action == "setup-queue":
        return setup_queue(args)
    settings = _settings(args)
    check_local_source(settings.source)
    try:
        found = pending(settings)
    except LakehouseError:
        raise
    except Exception as exc:  # never "nothing pending" (exit 1) on an error: a sensor would wait forever
        raise LakehouseError(f"sources pending: {_one_line(exc)}") from exc
    rows = [{"source": f.source, "file": f.path.removeprefix(settings.source + "/"),
             "modified_at": datetime.datetime.fromtimestamp(f.modified_ms / 1000, datetime.timezone.utc).isoformat(timespec="milliseconds"),
             "reason": f.reason} for f in found.files]
    if rows or args.format != "table":
        print_rows(["source", "file", "modified_at", "reason"], rows, args.format)
    new = sum(f.reason == "new" for f in found.files)
    recorded = f"bronze.landed_files v{found.table_version}" if found.table_version >= 0 else "no bronze.landed_files yet"
    stderr.print(f"{len(rows)} file(s) pending in {settings.source}: {new} new, {len(rows) - new} landed again ({recorded})")
    if found.stale:
        stderr.print(f"[yellow]bronze.landed_files changed since its cached index (v{found.index_version}): "
                     "a run is due, and brings the index up to date[/]")
    return 0 if found.due else 1


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakehouse", description="Incremental Delta lakehouse for Sparkify events.")
    parser.add_argument("--debug", action="store_true", help="show Spark logs and full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_env(p: argparse.ArgumentParser, source: bool = False) -> argparse.ArgumentParser:
        p.add_argument("--env", help="conf/<env>.toml to read (default: local, or LAKEHOUSE_ENV)")
        if source:
            p.add_argument("--source", help="landing zone URI (local path, file:// or s3a://)")
        p.add_argument("--warehouse", help="warehouse URI (local path, file:// or s3a://)")
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return p

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def fmt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=("table", "json", "csv"), default="table")

    p = command("generate", cmd_generate, "write a synthetic landing zone (song_data/, log_data/)")
    p.add_argument("--out", required=True, help="directory (or s3a://bucket/prefix) to write to")
    p.add_argument("--songs", type=int, default=200)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--events-per-day", type=int, default=2000)
    p.add_argument("--start", default="2018-11-01", help="first day, YYYY-MM-DD")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    p = command("upload", cmd_upload, "copy a local landing zone to S3 (creates the bucket; skips files already there)")
    p.add_argument("--from", dest="src", required=True, metavar="DIR", help="local landing zone folder")
    p.add_argument("--to", required=True, metavar="URI", help="s3a://bucket/prefix")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    p = with_env(command("run", cmd_run, "run the pipeline: incremental (new files only) or full (silver and gold rebuilt from bronze)"),
                 source=True)
    p.add_argument("kind", choices=("incremental", "full"))
    p.add_argument("--reingest", action="store_true",
                   help="full only: rebuild bronze too, from the landing zone (stops if files bronze holds are gone from it)")
    p.add_argument("--allow-missing-source", action="store_true",
                   help="with --reingest: drop from bronze the files the landing zone no longer has")
    p.add_argument("--report-json", type=Path, metavar="FILE",
                   help="also write the run's report (rows, versions, seconds per layer, Spark jobs, commits) as JSON")
    p.add_argument("--watch", action="store_true",
                   help="incremental only: keep one Spark session and run whenever files land, until SIGTERM (freshness mode)")
    p.add_argument("--every", metavar="DURATION", help="with --watch: how often to look for new files (default 30s; e.g. 10s, 2m)")

    p = with_env(command("reconcile", cmd_reconcile, "a run that also lists the whole landing zone: files discovery missed are ingested and counted"),
                 source=True)
    p.add_argument("--report-json", type=Path, metavar="FILE", help="also write the run's report as JSON")

    p = with_env(command("sql", cmd_sql, "run a SQL query over the bronze, silver and gold tables"))
    p.add_argument("query", help='e.g. "SELECT count(*) FROM gold.songplays VERSION AS OF 1"')
    fmt(p)

    p = with_env(command("report", cmd_report, "answer the analytics team's questions from gold"))
    fmt(p)

    p = with_env(command("history", cmd_history, "list the versions of a table"))
    p.add_argument("table", help="layer.name, e.g. gold.songplays")
    p.add_argument("--limit", type=int, default=20)
    fmt(p)

    p = with_env(command("restore", cmd_restore, "restore a table to an earlier version (itself a new, undoable version)"))
    p.add_argument("table")
    when = p.add_mutually_exclusive_group(required=True)
    when.add_argument("--version", type=int)
    when.add_argument("--timestamp", help="e.g. '2026-11-24 10:00:00' (UTC)")

    p = with_env(command("runs", cmd_runs, "list recent runs from the run log"))
    p.add_argument("--limit", type=int, default=10)
    fmt(p)

    p = with_env(command("dashboard", cmd_dashboard, "write a static status site (flow, runs, data quality, answers) to a folder"))
    p.add_argument("--out", required=True, metavar="DIR", help="folder for index.html (created if missing)")

    p = with_env(command("maintain", cmd_maintain, "OPTIMIZE and VACUUM every table (safe retention)"))
    p.add_argument("--retain-hours", type=int, default=168, help="VACUUM retention (>= 168, the Delta default)")
    p.add_argument("--purge-forgotten", action="store_true",
                   help="then make the forgotten users' rows unreadable in old versions (see `forget --purge`)")

    p = with_env(command("forget", cmd_forget, "erase users from bronze, silver, gold and the quarantine, and keep them out of later runs"))
    p.add_argument("--user-id", action="append", required=True, metavar="N", help="a user id to forget (repeat for more)")
    p.add_argument("--purge", action="store_true",
                   help="also from old versions: vacuum with retention 0 and truncate the Delta log (time travel before now is gone)")
    p.add_argument("--dry-run", action="store_true", help="print per table how many rows would be removed; write nothing")

    with_env(command("manifest", cmd_manifest, "symlink manifests + external-table DDL for Athena / Redshift Spectrum"))

    p = with_env(command("thrift", cmd_thrift, "start, stop or check the Spark Thrift Server (JDBC); add users; make a TLS keystore"))
    p.add_argument("action", choices=("start", "stop", "status", "add-user", "cert"))
    p.add_argument("name", nargs="?", help="add-user: the user's name (password asked, or read from stdin when piped)")
    p.add_argument("--port", type=int)
    p.add_argument("--host", help="address to bind to (thrift.host)")
    p.add_argument("--auth", help="sign-in: none (loopback only), password-file or ldap (thrift.auth)")
    p.add_argument("--password-file", help="users and salted hashes, outside the repo (thrift.password_file)")
    p.add_argument("--keystore", help="TLS keystore (thrift.keystore); password from LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD")
    p.add_argument("--tls", action="store_true", default=None, help="serve over TLS (thrift.tls)")

    p = with_env(command("gate", cmd_gate, "check a run's ops.runs row (succeeded, rows reconcile, bad rows under a share): exit 0 or 2"))
    p.add_argument("--run-id", help="the run to check (default: the latest incremental or full run)")
    p.add_argument("--max-quarantined", type=float, default=0.01, metavar="SHARE", help="quarantined rows / rows in (default 0.01)")
    p.add_argument("--max-violations", type=float, default=0.01, metavar="SHARE",
                   help="quality-rule violations / rows in (default 0.01)")

    p = with_env(command("sources", cmd_sources, "pending: what landed and is not yet in bronze, without Spark (exit 0: pending, "
                                                 "1: nothing pending); setup-queue: the bucket's S3 event notifications to SQS"),
                 source=True)
    p.add_argument("action", choices=("pending", "setup-queue"))
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument("--queue", metavar="NAME|URL", help="setup-queue: the queue to create (a name) or use (a URL); default lakehouse-landing-<bucket>")

    p = with_env(command("changes", cmd_changes, "print a table's Change Data Feed (inserted/updated/deleted rows) for downstream jobs"))
    p.add_argument("table", help="a silver or gold table, e.g. gold.songplays")
    p.add_argument("--since-version", type=int, required=True, metavar="N",
                   help="first table version to include (as table_changes(TABLE, N)); the output ends with the next N")
    p.add_argument("--preimages", action="store_true", help="also print the rows as they were before an update")
    fmt(p)
    return parser


def _configure_logging(debug: bool) -> None:
    handler = RichHandler(console=stderr, show_path=False, show_level=debug, markup=False, log_time_format="%H:%M:%S")
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("lakehouse").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("py4j").setLevel(logging.ERROR)
    # pyspark logs every failed query as a JSON blob with the JVM stack; the CLI prints one line instead.
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)


def _one_line(exc: BaseException) -> str:
    """A JVM or Python error reduced to the line an operator needs."""
    text = str(exc).strip()
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return first.replace("\t", " ")[:500]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `lakehouse` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    _configure_logging(debug)
    try:
        return int(args.func(args))
    except LakehouseError as exc:
        stderr.print(f"[red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
        if debug:
            stderr.print_exception()
        return exc.exit_code
    except KeyboardInterrupt:
        stderr.print("[red]interrupted[/]")
        return 130
    except Exception as exc:
        if debug:
            stderr.print_exception()
        stderr.print(f"[red]error:[/] {_one_line(exc)}" + ("" if debug else "  (--debug for details)"),
                     markup=True, highlight=False, soft_wrap=True)
        # A query the user got wrong (unknown table, bad SQL, missing version) is a usage error, not a crash.
        return 2 if type(exc).__name__ in ("AnalysisException", "ParseException") else 1


if __name__ == "__main__":
    sys.exit(main())
