"""Small files beside the tables: pipeline state (watermarks) and the per-warehouse run lock.

Both go through Hadoop's FileSystem API, so they work on file:// and s3a:// alike.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from lakehouse.errors import RunLockedError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30
STALE_AFTER_SECONDS = 300


class Files:
    """Read, write (atomically) and delete small files by URI."""

    def __init__(self, spark: SparkSession) -> None:
        self.spark = spark
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]

    def _fs_path(self, uri: str) -> tuple[Any, Any]:
        path = self._jvm.org.apache.hadoop.fs.Path(uri)  # type: ignore[union-attr]
        return path.getFileSystem(self._conf), path

    def exists(self, uri: str) -> bool:
        fs, path = self._fs_path(uri)
        return bool(fs.exists(path))

    def read(self, uri: str) -> str | None:
        if uri.startswith("file:"):
            local = urlparse(uri).path
            return open(local, encoding="utf-8").read() if os.path.exists(local) else None
        fs, path = self._fs_path(uri)
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            data = self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)  # type: ignore[union-attr]
        finally:
            stream.close()
        return bytes(data).decode("utf-8")

    def write(self, uri: str, text: str, exclusive: bool = False) -> bool:
        """Write `text` atomically; with exclusive=True only if the file does not exist (returns False then)."""
        if uri.startswith("file:"):
            local = urlparse(uri).path
            os.makedirs(os.path.dirname(local), exist_ok=True)
            if exclusive:
                try:
                    fd = os.open(local, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                return True
            tmp = f"{local}.tmp-{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, local)
            return True
        fs, path = self._fs_path(uri)
        if exclusive and fs.exists(path):
            return False
        try:
            out = fs.create(path, not exclusive)
        except Exception as exc:  # FileAlreadyExistsException from the JVM
            if exclusive and "AlreadyExists" in str(exc):
                return False
            raise
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        return True

    def delete(self, uri: str) -> None:
        if uri.startswith("file:"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(urlparse(uri).path)
            return
        fs, path = self._fs_path(uri)
        fs.delete(path, False)


@dataclass
class PipelineState:
    """Where each consumer stands: the last source version it has absorbed, and the checkpoint generation."""

    generation: str = "g0"
    watermarks: dict[str, int] | None = None
    full_in_progress: str | None = None

    def watermark(self, name: str) -> int:
        return (self.watermarks or {}).get(name, -1)


class StateStore:
    def __init__(self, files: Files, system_path: str) -> None:
        self.files = files
        self.uri = f"{system_path}/state.json"

    def load(self) -> PipelineState:
        text = self.files.read(self.uri)
        if not text:
            return PipelineState(watermarks={})
        data = json.loads(text)
        return PipelineState(data.get("generation", "g0"), data.get("watermarks", {}), data.get("full_in_progress"))

    def save(self, state: PipelineState) -> None:
        payload = {"generation": state.generation, "watermarks": state.watermarks or {}, "full_in_progress": state.full_in_progress}
        self.files.write(self.uri, json.dumps(payload, indent=2, sort_keys=True))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, process group) of `pid` from /proc, or None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ("?", -1)
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def pid_alive(pid: int) -> bool:
    """True when `pid` runs (a zombie that nobody reaped yet counts as gone)."""
    if Path("/proc").is_dir():
        stat = proc_stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """One run at a time per warehouse. A lock left by a killed run is detected and taken over."""

    def __init__(self, files: Files, system_path: str, run_id: str, kind: str) -> None:
        self.files = files
        self.uri = f"{system_path}/run.lock"
        self.owner = {"run_id": run_id, "kind": kind, "pid": os.getpid(), "host": socket.gethostname(), "started_at": _now()}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _holder(self) -> dict[str, Any] | None:
        text = self.files.read(self.uri)
        if text is None:
            return None
        try:
            return dict(json.loads(text))
        except ValueError:
            return {"run_id": "?", "heartbeat_at": None}

    def _is_stale(self, holder: dict[str, Any]) -> str | None:
        same_host = holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int)
        if same_host and not pid_alive(holder["pid"]):
            return f"process {holder['pid']} is gone"
        beat = holder.get("heartbeat_at") or holder.get("started_at")
        if beat:
            age = (datetime.now(timezone.utc) - datetime.fromisoformat(beat)).total_seconds()
            if age > STALE_AFTER_SECONDS:
                return f"no heartbeat for {age:.0f}s"
        else:
            return "unreadable lock file"
        return None

    def acquire(self, wait_seconds: int = 0) -> None:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            body = json.dumps({**self.owner, "heartbeat_at": _now()})
            if self.files.write(self.uri, body, exclusive=True):
                break
            holder = self._holder()
            if holder is None:
                continue
            reason = self._is_stale(holder)
            if reason:
                log.warning("Removing the run lock left by run %s (%s)", holder.get("run_id"), reason)
                self.files.delete(self.uri)
                continue
            desc = (f"run {holder.get('run_id')} ({holder.get('kind')}, pid {holder.get('pid')} on "
                    f"{holder.get('host')}, started {holder.get('started_at')})")
            if time.monotonic() >= deadline:
                raise RunLockedError(
                    f"another run holds the warehouse lock: {desc}; try again when it ends"
                    + ("" if wait_seconds else " (or set LAKEHOUSE_RUN_LOCK_WAIT_SECONDS to wait)")
                )
            if not announced:
                log.warning("Waiting up to %ss for %s to finish", wait_seconds, desc)
                announced = True
            time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
        self._thread = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.files.write(self.uri, json.dumps({**self.owner, "heartbeat_at": _now()}))
            except Exception:  # pragma: no cover - a missed heartbeat is not fatal
                log.debug("heartbeat failed", exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder = self._holder()
        if holder and holder.get("run_id") == self.owner["run_id"]:
            self.files.delete(self.uri)

    @contextlib.contextmanager
    def held(self, wait_seconds: int = 0) -> Iterator[None]:
        self.acquire(wait_seconds)
        try:
            yield
        finally:
            self.release()
