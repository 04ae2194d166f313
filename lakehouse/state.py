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
from dataclasses import dataclass, field
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

    def write(self, uri: str, text: str) -> None:
        """Write `text` atomically (local: a temporary file renamed over the target)."""
        if uri.startswith("file:"):
            local = urlparse(uri).path
            os.makedirs(os.path.dirname(local), exist_ok=True)
            tmp = f"{local}.tmp-{os.getpid()}"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, local)
            return
        fs, path = self._fs_path(uri)
        out = fs.create(path, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()


    def delete(self, uri: str) -> None:
        """Remove a file if it is there."""
        if uri.startswith("file:"):
            Path(urlparse(uri).path).unlink(missing_ok=True)
            return
        fs, path = self._fs_path(uri)
        fs.delete(path, False)


@dataclass
class PipelineState:
    """Where each consumer stands: the last source version it has absorbed, and the bronze batch generation."""

    generation: str = "g0"
    watermarks: dict[str, int] | None = None
    full_in_progress: str | None = None
    # `run full --reingest` in progress: "truncate" (bronze not yet emptied) or "ingest" (being filled again)
    reingest_phase: str | None = None
    # bronze: the last batch known complete per source and generation (lakehouse.record.landing.BatchPlan)
    bronze_batches: dict[str, int] = field(default_factory=dict)
    # landing discovery (lakehouse.record.discovery): the queue listed once after switching to it, the last reconciliation
    discovery: dict[str, str] = field(default_factory=dict)

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
        return PipelineState(data.get("generation", "g0"), data.get("watermarks", {}), data.get("full_in_progress"),
                             data.get("reingest_phase"), data.get("bronze_batches", {}), data.get("discovery", {}))

    def save(self, state: PipelineState) -> None:
        payload = {"generation": state.generation, "watermarks": state.watermarks or {},
                   "full_in_progress": state.full_in_progress, "reingest_phase": state.reingest_phase,
                   "bronze_batches": state.bronze_batches, "discovery": state.discovery}
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


class LockFile:
    """The run lock's file, changed only by compare-and-swap: `put` succeeds only if the file is still as read.

    S3: conditional PUTs (`If-None-Match: *` to create, `If-Match: <etag>` to replace), atomic in the store.
    Local: every change happens under flock() on a guard file beside the lock (one host).
    `read` returns (text or None, token); `put(text, token)` writes when the file is unchanged since that
    read (token None: when it does not exist) and returns the new token, or None when another run won.
    """

    def __init__(self, uri: str) -> None:
        self.uri = uri
        if uri.startswith("s3a://"):
            from lakehouse.storage import shared_s3_client, split_s3a

            self.bucket, self.key = split_s3a(uri)
            self._s3 = shared_s3_client()
        else:
            self.local = Path(urlparse(uri).path)
            self.local.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        import fcntl

        with open(self.local.with_name(self.local.name + ".guard"), "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(guard, fcntl.LOCK_UN)

    def read(self) -> tuple[str | None, str | None]:
        if not self.uri.startswith("s3a://"):
            try:
                text = self.local.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None, None
            return text, text
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=self.key)
        except self._s3.exceptions.NoSuchKey:
            return None, None
        return obj["Body"].read().decode("utf-8"), str(obj["ETag"])

    def put(self, text: str, token: str | None) -> str | None:
        if not self.uri.startswith("s3a://"):
            with self._guard():
                if self.read()[1] != token:
                    return None
                tmp = self.local.with_name(f"{self.local.name}.tmp-{os.getpid()}-{threading.get_ident()}")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, self.local)
                return text
        from botocore.exceptions import ClientError

        condition = {"IfNoneMatch": "*"} if token is None else {"IfMatch": token}
        try:
            return str(self._s3.put_object(Bucket=self.bucket, Key=self.key, Body=text.encode("utf-8"), **condition)["ETag"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"):
                return None
            raise

    def delete(self, token: str) -> None:
        """Remove the file if it is still as read (S3: If-Match where the store supports conditional deletes)."""
        if not self.uri.startswith("s3a://"):
            with self._guard():
                if self.read()[1] == token:
                    self.local.unlink()
            return
        from botocore.exceptions import ClientError

        with contextlib.suppress(ClientError):
            self._s3.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=token)


class RunLock:
    """One run at a time per warehouse. A lock left by a killed run is detected and taken over.

    Taking the lock, taking over a stale one and each heartbeat are compare-and-swap writes (LockFile):
    of runs started in the same instant, exactly one holds the lock.
    """

    def __init__(self, system_path: str, run_id: str, kind: str) -> None:
        self.file = LockFile(f"{system_path}/run.lock")
        self.owner = {"run_id": run_id, "kind": kind, "pid": os.getpid(), "host": socket.gethostname(), "started_at": _now()}
        self._token: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _holder(self) -> tuple[dict[str, Any] | None, str | None]:
        text, token = self.file.read()
        if text is None:
            return None, None
        try:
            return dict(json.loads(text)), token
        except ValueError:
            return {"run_id": "?", "heartbeat_at": None}, token

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

    def _body(self) -> str:
        return json.dumps({**self.owner, "heartbeat_at": _now()})

    def acquire(self, wait_seconds: int = 0) -> None:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            holder, token = self._holder()
            reason = self._is_stale(holder) if holder is not None else None
            if holder is None or reason:
                if reason:
                    log.warning("Taking over the run lock left by run %s (%s)", holder.get("run_id") if holder else "?", reason)
                self._token = self.file.put(self._body(), token)
                if self._token is not None:
                    break
                continue  # another run changed the lock since we read it: look again
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
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="run-lock-heartbeat", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                token = self.file.put(self._body(), self._token)
            except Exception:  # pragma: no cover - a missed heartbeat is not fatal
                log.debug("heartbeat failed", exc_info=True)
                continue
            if token is None:
                log.error("The run lock was taken over by another run (this run was silent for over %ss)", STALE_AFTER_SECONDS)
                return
            self._token = token

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        holder, token = self._holder()
        if holder and holder.get("run_id") == self.owner["run_id"] and token is not None:
            self.file.delete(token)

    @contextlib.contextmanager
    def held(self, wait_seconds: int = 0) -> Iterator[None]:
        self.acquire(wait_seconds)
        try:
            yield
        finally:
            self.release()
