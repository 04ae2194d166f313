"""Freshness mode (`lakehouse run incremental --watch`): one warm SparkSession, an incremental run whenever files land.

Every `every` seconds the landing zone is listed and compared with bronze.landed_files as a run does
(Pipeline.arrivals: no lock, no write); when files landed, the same exactly-once incremental run as a
daily run follows, under the run lock for as long as it runs and no longer, so `maintain`, `run full` or a
scheduled run can take the warehouse between cycles. The first cycle always runs, to finish whatever a
stopped run left (a batch to replay, a full rebuild to complete). Each cycle is a run of its own in
ops.runs (`details.trigger` = "watch", with its landing-to-gold seconds).

Stopping: SIGTERM or Ctrl-C lets the cycle in progress finish, then the watch ends with exit 0 (a second
Ctrl-C interrupts at once). A cycle that fails ends the watch with the run's error, leaving exactly what a
failed daily run leaves; a cycle that finds the warehouse busy waits for the next check.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lakehouse.config import Settings
from lakehouse.errors import ConfigError, RunLockedError
from lakehouse.pipeline import Pipeline
from lakehouse.report import RunReport

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

DEFAULT_EVERY = 30.0
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_every(text: str) -> float:
    """'30s', '2m', '1h' or plain seconds ('45', '0.5') -> seconds; a ConfigError for anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text.lower())
    if match is None or float(match.group(1)) <= 0:
        raise ConfigError(f"--every {text!r}: expected a positive duration such as 30s, 2m or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]


def stop_on_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop` (the cycle in progress finishes); a second SIGINT interrupts at once."""

    def handle(signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and stop.is_set():
            raise KeyboardInterrupt
        log.warning("watch: %s received: stopping after the cycle in progress", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


class Watch:
    """The watch loop over one warehouse, on one SparkSession."""

    def __init__(self, spark: SparkSession, settings: Settings, every: float = DEFAULT_EVERY, stop: threading.Event | None = None,
                 status: Any = None, on_run: Callable[[RunReport], None] | None = None) -> None:
        self.spark = spark
        self.settings = settings
        self.every = every
        self.stop = stop or threading.Event()
        self.status = status
        self.on_run = on_run
        self.cycles = 0  # runs started

    def run(self) -> int:
        """Watch until stopped; returns 0. A failing cycle raises what the run raised."""
        log.info("watch: %s -> %s, looking for new files every %gs (SIGTERM or Ctrl-C stops after the cycle in progress)",
                 self.settings.source, self.settings.warehouse, self.every)
        first = True
        while not self.stop.is_set():
            started = time.monotonic()
            pipeline = Pipeline(self.spark, self.settings, status=self.status)
            arrived = pipeline.arrivals()
            if first or arrived:
                self.cycle(pipeline, arrived)
            first = False
            self.stop.wait(max(0.0, self.every - (time.monotonic() - started)))
        log.info("watch: stopped after %d run(s)", self.cycles)
        return 0

    def cycle(self, pipeline: Pipeline, arrived: int) -> RunReport | None:
        """One incremental run; None when another run holds the warehouse (the next check tries again)."""
        self.cycles += 1
        log.info("watch: cycle %d: %d file(s) to read", self.cycles, arrived)
        try:
            report = pipeline.run("incremental", trigger="watch")
        except RunLockedError as exc:
            log.warning("watch: %s; trying again at the next check", exc)
            return None
        latency = report.landing_to_gold()
        log.info("watch: cycle %d done in %.1fs%s", self.cycles, report.duration_s,
                 f"; landing to gold {latency['oldest']:.1f}s (oldest file), {latency['newest']:.1f}s (newest)" if latency else "")
        if self.on_run is not None:
            self.on_run(report)
        return report
