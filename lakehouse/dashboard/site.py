"""`lakehouse dashboard`: a Snapshot (lakehouse.dashboard.snapshot) rendered to one self-contained
index.html (inline CSS and SVG charts, no script, no network). Rendering is pure; `build` reads the warehouse (without a JVM) and writes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.dashboard import charts
from lakehouse.dashboard.snapshot import Snapshot, ago, collect, quarantine_spikes

if TYPE_CHECKING:
    from lakehouse.config import Settings

TEMPLATES = Path(__file__).parent / "templates"
LAYERS = ("bronze", "silver", "gold", "ops")
WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def anchor(table: str) -> str:
    """The id of a table's section: 'gold.songplays' -> 'table-gold-songplays'."""
    return "table-" + table.replace(".", "-")


def _run_label(run: Any) -> str:
    return run.started_at.strftime("%m-%d %H:%M") if run.started_at else run.run_id[:13]


def run_charts(snap: Snapshot) -> dict[str, str]:
    """Duration per layer, rows per run and rule violations per run, as SVG."""
    runs = [r for r in snap.runs if r.kind != "maintain"] or snap.runs
    if not runs:
        return {}
    labels = [_run_label(r) for r in runs]
    layers = sorted({k for r in runs for k in r.layer_seconds}, key=lambda k: (LAYERS.index(k) if k in LAYERS else 9, k))
    out = {
        "duration": charts.stacked_bars(
            labels, {k: [r.layer_seconds.get(k, 0.0) for r in runs] for k in layers}, "Seconds per layer, per run", "seconds",
            charts.LAYER_COLOURS, failed=[r.status == "failed" for r in runs]),
        "rows": charts.grouped_bars(
            labels, {"rows in": [r.rows_in for r in runs], "loaded": [r.rows_loaded for r in runs],
                     "quarantined": [r.rows_quarantined for r in runs]},
            "Rows in, loaded and quarantined, per run", "rows",
            {"rows in": charts.MUTED, "loaded": charts.OK, "quarantined": charts.BAD}),
    }
    rules = sorted({k for r in runs for k, v in r.violations.items() if v})  # rules never broken: no bars
    if rules:
        out["quality"] = charts.stacked_bars(
            labels, {k: [r.violations.get(k, 0) for r in runs] for k in rules}, "Rule violations per run", "rows")
    return out


def landing_to_gold(snap: Snapshot) -> list[tuple[Any, dict[str, float]]]:
    """(run, {"oldest": s, "newest": s}) for the runs that read files: seconds from a file's landing to gold, per cycle."""
    out = []
    for run in snap.runs:
        latency = run.details.get("landing_to_gold_s")
        if isinstance(latency, dict) and all(isinstance(latency.get(k), (int, float)) for k in ("oldest", "newest")):
            out.append((run, {"oldest": float(latency["oldest"]), "newest": float(latency["newest"])}))
    return out


def latency_chart(latencies: list[tuple[Any, dict[str, float]]]) -> str:
    """Landing-to-gold seconds of the oldest file each run read, per run (the watch mode's cycles, or daily runs)."""
    if not latencies:
        return ""
    return charts.bar_chart([_run_label(r) for r, _ in latencies], [v["oldest"] for _, v in latencies],
                            "Landing to gold, per run (oldest file read)", "seconds", colour=charts.LAYER_COLOURS["gold"])


def answer_charts(snap: Snapshot) -> dict[str, str]:
    """The analytics answers as charts, keyed by the query file's stem."""
    out: dict[str, str] = {}
    for a in snap.answers:
        rows = a.rows
        if not rows:
            continue
        if "hour" in a.columns:
            out[a.key] = charts.bar_chart([r["hour"] for r in rows], [r["plays"] for r in rows], a.title, "plays")
        elif "weekday" in a.columns:
            out[a.key] = charts.bar_chart([WEEKDAYS.get(r["weekday"], r["weekday"]) for r in rows], [r["plays"] for r in rows],
                                          a.title, "plays", width=4.5)
        elif "level" in a.columns and "user_id" not in a.columns:
            out[a.key] = charts.bar_chart([r["level"] for r in rows], [r["plays"] for r in rows], a.title, "plays",
                                          colour=charts.LAYER_COLOURS["gold"], width=3.5)
        elif "title" in a.columns:
            out[a.key] = charts.bar_chart([f"{r['title']} — {r['artist']}" for r in rows], [r["plays"] for r in rows],
                                          a.title, "plays", horizontal=True, height=3.2)
        elif "user_id" in a.columns:
            out[a.key] = charts.bar_chart([f"{r['first_name']} {r['last_name']} ({r['user_id']}, {r['level']})" for r in rows],
                                          [r["plays"] for r in rows], a.title, "plays", horizontal=True, height=3.2)
    return out


def landing_counts(snap: Snapshot) -> dict[str, dict[str, int]]:
    """Files and rows that came in per landing source, summed over the runs shown."""
    totals: dict[str, dict[str, int]] = {}
    for run in snap.runs:
        for source, counts in run.sources.items():
            agg = totals.setdefault(source, {"files": 0, "rows_in": 0, "loaded": 0, "quarantined": 0})
            for key in agg:
                agg[key] += int(counts.get(key, 0))
    return totals


def last_reconcile(snap: Snapshot) -> dict[str, Any] | None:
    """The latest reconciliation among the runs shown: how many files discovery had missed (0 is normal), and which."""
    for run in reversed(snap.runs):
        found = run.details.get("discovery")
        if isinstance(found, dict) and isinstance(found.get("reconcile"), dict):
            missed = found["reconcile"]
            return {"run_id": run.run_id, "started_at": run.started_at, "how": found.get("how", ""),
                    "missed": int(missed.get("missed") or 0), "files": [str(f) for f in missed.get("files") or []]}
    return None


def render(snap: Snapshot) -> str:
    """The whole page as HTML text; every value from the warehouse is escaped by the template engine."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(bytes=human_bytes, anchor=anchor, n=lambda v: f"{int(v or 0):,}",
                       ts=lambda v: v.strftime("%Y-%m-%d %H:%M:%S") if v else "—")
    by_layer = {layer: [t for t in snap.tables if t.layer == layer] for layer in LAYERS}
    last = snap.runs[-1] if snap.runs else None
    latencies = landing_to_gold(snap)
    return env.get_template("dashboard.html.j2").render(
        latest_latency=latencies[-1] if latencies else None, latency_chart=latency_chart(latencies),
        snap=snap, by_layer=by_layer, last=last, landing=landing_counts(snap),
        spikes=quarantine_spikes(snap.runs), run_charts=run_charts(snap), answer_charts=answer_charts(snap),
        newest_ago=ago(snap.newest_event, snap.taken_at), success_ago=ago(snap.last_success, snap.taken_at),
        failed=sum(r.status == "failed" for r in snap.runs), reconcile=last_reconcile(snap),
    )


def write(snap: Snapshot, out: Path) -> Path:
    """Write index.html into `out` (created if needed); returns its path."""
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(render(snap), encoding="utf-8")
    return index


def build(settings: Settings, out: str | Path) -> Path:
    """Read the warehouse of `settings` and write its site into `out`; returns the path of its index.html."""
    return write(collect(settings), Path(out))
