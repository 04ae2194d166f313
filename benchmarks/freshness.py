"""Freshness benchmark: a file lands every `--interval` seconds beside `lakehouse run incremental --watch`.

    make bench BENCH_ARGS=--freshness                        # 10 minutes, a 20,000-event day every 30 s (the target's run)
    python benchmarks/run.py --freshness --minutes 2 --events-per-day 2000 --songs 500   # a short run of the harness

The landing zone starts with the song files and one day; the watching process (a fresh `lakehouse` process,
`--every` as given) ingests them in its first cycle, which is not measured. Then one day file lands every
interval (written under a hidden name and renamed, so it appears whole), its landing time noted. After the last
one is in gold (or a timeout), the watch gets SIGTERM and must exit 0. One `lakehouse sql` afterwards reads,
per landed file, the run that read it (bronze.landed_files.run_id) and that run's end (ops.runs.ended_at):
landing-to-gold latency = run end - landing time. Cycle time = the watch runs' duration_s. Memory = resident
set of the watching process and its JVM, sampled every 2 s from /proc; flat when the median of the last
minute is within 10 % of the median of the middle minute (the JVM grows its heap towards -Xmx in the first
minutes whatever it keeps; the first minute is reported too).
Results: benchmarks/results/freshness.{json,md}; the Markdown is also printed.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from measure import LAKEHOUSE

from lakehouse.generate import GenerateSpec, generate, log_rel_path

log = logging.getLogger("bench.freshness")

P95_TARGET_S = 45.0
MEMORY_GROWTH = 0.10  # the last minute's median RSS within 10 % of the middle minute's
SAMPLE_EVERY_S = 2.0


@dataclass
class FreshnessResult:
    minutes: float
    interval_s: float
    every: str
    events_per_day: int
    landed: list[dict[str, Any]] = field(default_factory=list)  # file, landed_at, run_id, gold_at, latency_s
    cycles: list[dict[str, Any]] = field(default_factory=list)  # run_id, duration_s, files
    memory_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    watch_exit: int | None = None
    stop_seconds: float | None = None  # SIGTERM to exit

    def latencies(self) -> list[float]:
        return sorted(f["latency_s"] for f in self.landed if f.get("latency_s") is not None)

    def summary(self) -> dict[str, Any]:
        lat = self.latencies()
        cycle = sorted(c["duration_s"] for c in self.cycles)
        def minute(around: float) -> list[float]:
            return [mb for t, mb in self.memory_mb if abs(t - around) <= 30]

        end = self.memory_mb[-1][0] if self.memory_mb else 0.0
        first, middle, last = minute(30), minute(end / 2), minute(end - 30)
        return {
            "files_landed": len(self.landed), "files_in_gold": len(lat),
            "latency_p50_s": percentile(lat, 50), "latency_p95_s": percentile(lat, 95), "latency_max_s": max(lat) if lat else None,
            "cycles": len(self.cycles), "cycle_p50_s": percentile(cycle, 50), "cycle_max_s": max(cycle) if cycle else None,
            "memory_first_min_mb": round(statistics.median(first), 1) if first else None,
            "memory_middle_min_mb": round(statistics.median(middle), 1) if middle else None,
            "memory_last_min_mb": round(statistics.median(last), 1) if last else None,
            "memory_max_mb": round(max(mb for _, mb in self.memory_mb), 1) if self.memory_mb else None,
            "watch_exit": self.watch_exit, "stop_seconds": self.stop_seconds,
        }


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted `values`."""
    if not values:
        return None
    rank = max(1, -(-len(values) * p // 100))
    return round(values[int(rank) - 1], 2)


def tree_rss_mb(pid: int) -> float:
    """Resident set of `pid` and every process under it (the watch's JVM is its child), in MB, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def land_file(src: Path, dst: Path) -> float:
    """Copy `src` to `dst` so that it appears whole (a hidden name, then a rename); returns the landing time."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.landing")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst.stat().st_mtime


def wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the watch exited ({proc.returncode}) early; its log: {path}\n" + path.read_text()[-3000:])
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"no {text!r} within {timeout:.0f}s; the log: {path}")


def run_freshness(work: Path, spec: GenerateSpec, minutes: float, interval: float, every: str, env: dict[str, str]) -> FreshnessResult:
    files = max(1, int(minutes * 60 // interval))
    spec = GenerateSpec(songs=spec.songs, users=spec.users, days=files + 1, events_per_day=spec.events_per_day, start=spec.start,
                        seed=spec.seed)
    pool, landing, warehouse, logs = work / "pool", work / "landing", work / "warehouse", work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log.info("generating %d song files and %d days of %d events", spec.songs, spec.days, spec.events_per_day)
    generate(pool, spec)
    shutil.copytree(pool / "song_data", landing / "song_data")
    days = [log_rel_path(spec.start + datetime.timedelta(days=d)) for d in range(spec.days)]
    land_file(pool / days[0], landing / days[0])

    result = FreshnessResult(minutes, interval, every, spec.events_per_day)
    watch_log = logs / "watch.log"
    with watch_log.open("wb") as out:
        proc = subprocess.Popen([str(LAKEHOUSE), "run", "incremental", "--watch", "--every", every, "--source", str(landing),
                                 "--warehouse", str(warehouse)], stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for(watch_log, "watch: cycle 1 done", proc, timeout=900)
        started = time.monotonic()
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(SAMPLE_EVERY_S):
                result.memory_mb.append((round(time.monotonic() - started, 1), round(tree_rss_mb(proc.pid), 1)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for i, rel in enumerate(days[1:]):
            time.sleep(max(0.0, started + i * interval - time.monotonic()))
            landed_at = land_file(pool / rel, landing / rel)
            result.landed.append({"file": rel, "landed_at": landed_at})
            log.info("landed %s (%d of %d)", rel, i + 1, files)
        # Until bronze has recorded every file (`sources pending` exits 1), at most 3 intervals more; SIGTERM then
        # lets the cycle in progress write gold.
        deadline = time.monotonic() + 3 * interval + 120
        while time.monotonic() < deadline and proc.poll() is None:
            pending = subprocess.run([str(LAKEHOUSE), "sources", "pending", "--source", str(landing), "--warehouse", str(warehouse)],
                                     capture_output=True, env=env)
            if pending.returncode == 1:
                break
            time.sleep(2)
        sampling.set()
        sampler.join()
    finally:
        stop_started = time.monotonic()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)  # the watch only: it finishes its cycle, then stops Spark
        try:
            result.watch_exit = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            result.watch_exit = proc.wait()
        result.stop_seconds = round(time.monotonic() - stop_started, 1)
    read_back(result, landing, warehouse, env, logs)
    return result


def read_back(result: FreshnessResult, landing: Path, warehouse: Path, env: dict[str, str], logs: Path) -> None:
    """Per landed file, the end of the run that read it; per watch cycle, its duration (one `lakehouse sql`)."""
    query = ("SELECT r.run_id, r.ended_at, r.duration_s, r.files_in, l.path, get_json_object(r.details, '$.trigger') AS trigger "
             "FROM ops.runs r LEFT JOIN bronze.landed_files l ON l.run_id = r.run_id WHERE r.status = 'succeeded'")
    proc = subprocess.run([str(LAKEHOUSE), "sql", query, "--format", "json", "--warehouse", str(warehouse)],
                          capture_output=True, text=True, env=env, timeout=600)
    (logs / "read_back.stderr").write_text(proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"reading the warehouse back failed: {proc.stderr[-2000:]}")
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    ended = {}
    for row in rows:
        when = datetime.datetime.fromisoformat(row["ended_at"]).replace(tzinfo=datetime.timezone.utc).timestamp()
        if row["path"]:
            ended[row["path"].removeprefix("file:").removeprefix(str(landing) + "/")] = (row["run_id"], when)
        if row["trigger"] == "watch" and all(c["run_id"] != row["run_id"] for c in result.cycles):
            result.cycles.append({"run_id": row["run_id"], "duration_s": float(row["duration_s"]), "files": int(row["files_in"])})
    result.cycles.sort(key=lambda c: c["run_id"])
    result.cycles = result.cycles[1:]  # the first cycle read the history, before anything was timed
    for f in result.landed:
        if f["file"] in ended:
            f["run_id"], f["gold_at"] = ended[f["file"]]
            f["latency_s"] = round(f["gold_at"] - f["landed_at"], 2)


def markdown(result: FreshnessResult, meta: dict[str, Any]) -> str:
    s = result.summary()
    p95 = s["latency_p95_s"]
    # The JVM grows its heap towards -Xmx in the first minutes whatever it keeps; a leak shows as growth after that.
    flat = (s["memory_middle_min_mb"] is not None and s["memory_last_min_mb"] is not None
            and s["memory_last_min_mb"] <= s["memory_middle_min_mb"] * (1 + MEMORY_GROWTH))

    def verdict(ok: bool) -> str:
        return "met" if ok else "**not met**"

    lines = [
        f"# Freshness: a {result.events_per_day:,}-event day lands every {result.interval_s:g} s for {result.minutes:g} min "
        f"beside `lakehouse run incremental --watch --every {result.every}`",
        "",
        f"{meta['when']} · {meta['host']} · load before {meta['load_before']}, after {meta['load_after']}"
        + (" · **a short run: the figures check the harness, not the target**" if meta.get("short") else ""),
        "",
        "| figure | value |",
        "|---|---:|",
        f"| files landed / in gold | {s['files_landed']} / {s['files_in_gold']} |",
        f"| landing to gold p50 / p95 / max (s) | {s['latency_p50_s']} / {p95} / {s['latency_max_s']} |",
        f"| cycles (timed) / cycle time p50 / max (s) | {s['cycles']} / {s['cycle_p50_s']} / {s['cycle_max_s']} |",
        f"| watching process + JVM, RSS MB: first / middle / last minute, max | {s['memory_first_min_mb']} / {s['memory_middle_min_mb']} / "
        f"{s['memory_last_min_mb']}, {s['memory_max_mb']} |",
        f"| SIGTERM to exit (s), exit code | {s['stop_seconds']}, {s['watch_exit']} |",
        "",
        "| target | verdict |",
        "|---|---|",
        f"| p95 landing to gold <= {P95_TARGET_S:g} s | {verdict(p95 is not None and p95 <= P95_TARGET_S)} ({p95} s) |",
        f"| memory flat (last minute within {MEMORY_GROWTH:.0%} of the middle one) | {verdict(flat)} |",
        f"| every landed file in gold; SIGTERM ends the watch with 0 | {verdict(s['files_in_gold'] == s['files_landed'] and s['watch_exit'] == 0)} |",
        "",
    ]
    return "\n".join(lines)


def main(args: Any, env: dict[str, str], work: Path, results_dir: Path) -> int:
    """`run.py --freshness`: run it, write freshness.json and freshness.md, print the Markdown."""
    import platform

    spec = GenerateSpec(songs=args.songs or 20000, users=args.users or 2000, days=1, events_per_day=args.events_per_day or 20000,
                        seed=args.seed)
    meta = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "host": f"{platform.node()} ({os.cpu_count()} cores)",
            "load_before": f"{os.getloadavg()[0]:.2f}", "short": args.minutes < 10 or spec.events_per_day < 20000}
    started = time.perf_counter()
    try:
        result = run_freshness(work, spec, args.minutes, args.interval, args.every, env)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    meta["load_after"] = f"{os.getloadavg()[0]:.2f}"
    meta["bench_seconds"] = round(time.perf_counter() - started, 1)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "freshness.json").write_text(json.dumps({"meta": meta, "summary": result.summary(), **asdict(result)}, indent=2) + "\n")
    text = markdown(result, meta)
    (results_dir / "freshness.md").write_text(text)
    print(text)
    print(f"wrote {results_dir / 'freshness.json'} and freshness.md in {meta['bench_seconds']:.0f}s")
    return 0
