"""S3 from Python (boto3): landing uploads, the generator's writer and fail-fast checks before Spark starts.

Credentials come only from the standard AWS provider chain (environment, profile, instance role). A
non-AWS endpoint comes from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (boto3 reads both itself); with
one set, requests use path-style addressing, as the S3A settings in session.py do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlparse

from lakehouse.config import normalize_uri
from lakehouse.errors import ConfigError, LakehouseError, SourceError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
else:
    S3Client = Any

DEFAULT_REGION = "us-east-1"
LANDING_FOLDERS = ("song_data", "log_data")
UPLOAD_WORKERS = 8
MULTIPART_FROM = 64 * 1024 * 1024  # smaller files go up in one PUT

UploadProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class UploadSummary:
    """What :func:`upload` did."""

    files: int  # files under the local folder
    uploaded: int
    skipped: int  # already in the bucket with the same size
    bytes_uploaded: int


def endpoint_override(environ: dict[str, str] | None = None) -> str | None:
    """The non-AWS S3 endpoint from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, if any."""
    env = os.environ if environ is None else environ
    return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None


def region(environ: dict[str, str] | None = None) -> str:
    """AWS_REGION (or AWS_DEFAULT_REGION), us-east-1 when neither is set."""
    env = os.environ if environ is None else environ
    return env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def s3_client() -> S3Client:
    """A boto3 S3 client: provider-chain credentials, endpoint/region from the environment, fail fast."""
    import boto3
    from botocore.config import Config

    options: dict[str, Any] = {
        "connect_timeout": 3,
        "read_timeout": 30,
        "retries": {"max_attempts": 2, "mode": "standard"},
    }
    if endpoint_override() is not None:
        options["s3"] = {"addressing_style": "path"}
        # S3-compatible stores do not all know the SDK's default CRC checksums: send them only when required.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    config = Config(**options)
    # The endpoint is left to boto3, which reads AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (and the profile).
    return boto3.session.Session().client("s3", region_name=region(), config=config)


def sqs_client() -> Any:
    """A boto3 SQS client (queue mode): provider-chain credentials; endpoint from AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=30, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.session.Session().client("sqs", region_name=region(), config=config)


REQUEST_KINDS = {"ListObjectsV2": "LIST", "ListObjects": "LIST", "HeadObject": "HEAD", "GetObject": "GET"}


class RequestCount:
    """Requests made through boto3 clients, by kind (LIST, HEAD, GET, SQS, other), counted by a botocore event hook.

    Counts API calls (a retried call counts once), when their parameters are built: before any handler that
    answers a call itself (the benchmark's) could hide it.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._hooked: list[Any] = []

    def _count(self, event_name: str = "", **_: Any) -> None:
        service, operation = (event_name.split(".") + ["", "", ""])[1:3]
        kind = "SQS" if service == "sqs" else REQUEST_KINDS.get(operation, operation or "other")
        with self._lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def attach(self, *clients: Any) -> RequestCount:
        for client in clients:
            service = client.meta.service_model.service_name
            client.meta.events.register(f"before-parameter-build.{service}", self._count, unique_id=f"count-{id(self)}")
            self._hooked.append(client)
        return self

    def detach(self) -> None:
        for client in self._hooked:
            client.meta.events.unregister(f"before-parameter-build.{client.meta.service_model.service_name}", unique_id=f"count-{id(self)}")
        self._hooked.clear()


_CLIENTS: dict[tuple[str | None, ...], S3Client] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_s3_client() -> S3Client:
    """One boto3 client per endpoint, region and access key (boto3 clients are thread-safe; creating one is slow)."""
    env = os.environ
    key = (endpoint_override(), region(), env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_PROFILE"))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = s3_client()
        return _CLIENTS[key]


def split_s3a(uri: str) -> tuple[str, str]:
    """`s3a://bucket/some/prefix` -> ("bucket", "some/prefix"); the prefix has no leading/trailing slash."""
    if not uri.strip().lower().startswith("s3a://"):
        if uri.strip().lower().startswith(("s3://", "s3n://")):
            normalize_uri(uri, "S3 URI")  # raises with the "use s3a://" hint
        raise ConfigError(f"{uri!r} is not an s3a://bucket/prefix URI")
    canonical = normalize_uri(uri, "S3 URI")
    bucket, _, prefix = canonical[len("s3a://"):].partition("/")
    return bucket, prefix.strip("/")


def _key(prefix: str, rel: str) -> str:
    rel = rel.lstrip("/")
    return f"{prefix}/{rel}" if prefix else rel


def _endpoint_of(client: S3Client) -> str:
    return str(client.meta.endpoint_url)


def explain(exc: Exception, client: S3Client, bucket: str, error: type[LakehouseError] = ConfigError) -> LakehouseError:
    """Turn a boto3/botocore failure into one line an operator can act on."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    endpoint = _endpoint_of(client)
    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError, ConnectionClosedError)):
        cause = str(getattr(exc, "kwargs", {}).get("error") or exc)
        reason = cause.rsplit(": ", 1)[-1] if "Failed to establish" in cause else cause.splitlines()[0]
        if isinstance(exc, ConnectTimeoutError):
            reason = "connection timed out"
        return error(f"S3 endpoint {endpoint} is unreachable ({reason})")
    if isinstance(exc, ReadTimeoutError):
        return error(f"S3 endpoint {endpoint} did not answer in time ({exc})")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return error(
            "no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, "
            "or run with an instance role)"
        )
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?"))
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken",
                    "InvalidClientTokenId", "AuthorizationHeaderMalformed"):
            return error(f"S3 rejected the credentials for bucket {bucket!r} ({code})")
        if code in ("AccessDenied", "403", "AllAccessDisabled"):
            return error(f"S3 rejected the credentials for bucket {bucket!r} (AccessDenied: they have no permission on it)")
        if code in ("NoSuchBucket", "404"):
            return error(
                f"no bucket {bucket!r} at {endpoint} (create it with `lakehouse upload`, which creates "
                f"missing buckets, or `aws s3 mb s3://{bucket}`)"
            )
        if code in ("PermanentRedirect", "301", "IllegalLocationConstraintException"):
            return error(f"bucket {bucket!r} is in another region than {region()} (set AWS_REGION)")
        message = str(err.get("Message") or "").strip()
        return error(f"S3 error on bucket {bucket!r} at {endpoint}: {code}" + (f" ({message})" if message else ""))
    return error(f"S3 request to {endpoint} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def _s3_failures() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError)


def ensure_bucket(client: S3Client, bucket: str) -> bool:
    """Create `bucket` when it does not exist; True when it was created. Errors are LakehouseErrors."""
    from botocore.exceptions import ClientError

    try:
        # A listing rather than HEAD: its error body names the cause (HEAD only says 403 or 404).
        client.list_objects_v2(Bucket=bucket, MaxKeys=1)
        return False
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
            raise explain(exc, client, bucket) from None
    except _s3_failures() as exc:
        raise explain(exc, client, bucket) from None
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region() != DEFAULT_REGION:
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region()}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code")) == "BucketAlreadyOwnedByYou":
            return False
        raise explain(exc, client, bucket) from None
    except _s3_failures() as exc:
        raise explain(exc, client, bucket) from None
    return True


def s3_writer(uri: str) -> Callable[[str, bytes], None]:
    """A `writer(rel_path, data)` for lakehouse.generate that PUTs under `uri` (bucket created if missing)."""
    bucket, prefix = split_s3a(uri)
    client = s3_client()
    ensure_bucket(client, bucket)

    def write(rel_path: str, data: bytes) -> None:
        try:
            client.put_object(Bucket=bucket, Key=_key(prefix, rel_path), Body=data)
        except _s3_failures() as exc:
            raise explain(exc, client, bucket) from None

    return write


def list_sizes(client: S3Client, bucket: str, prefix: str) -> dict[str, int]:
    """Every object under `prefix` (key -> size), listed with one paginator."""
    sizes: dict[str, int] = {}
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        for obj in page.get("Contents", []):
            sizes[obj["Key"]] = int(obj["Size"])
    return sizes


class Folder(NamedTuple):
    """What lies directly in a folder: its files' and its subfolders' names, sorted."""

    files: list[str]
    folders: list[str]


def list_folder(uri: str, after: str = "", error: type[LakehouseError] = ConfigError) -> Folder:
    """The names directly under `uri` (a local path, file: or s3a: URI) that sort after `after`; empty when it
    is absent. S3: ListObjectsV2 pages with a delimiter, no request per object; a failure is one `error`."""
    if not uri.startswith("s3a://"):
        path = urlparse(uri).path
        try:
            entries = [(entry.name, entry.is_dir()) for entry in os.scandir(path) if entry.name > after]
        except (FileNotFoundError, NotADirectoryError):
            return Folder([], [])
        return Folder(sorted(n for n, is_dir in entries if not is_dir), sorted(n for n, is_dir in entries if is_dir))
    bucket, prefix = split_s3a(uri)
    base = f"{prefix}/" if prefix else ""
    client = shared_s3_client()
    files: list[str] = []
    folders: list[str] = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=base, Delimiter="/", StartAfter=base + after):
            files += [obj["Key"][len(base):] for obj in page.get("Contents", [])]
            folders += [common["Prefix"][len(base):].rstrip("/") for common in page.get("CommonPrefixes", [])]
    except _s3_failures() as exc:
        raise explain(exc, client, bucket, error) from None
    return Folder(sorted(files), sorted(folders))


def _local_files(root: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield path, path.relative_to(root).as_posix()


def upload(local_dir: str | os.PathLike[str], uri: str, progress: UploadProgress | None = None) -> UploadSummary:
    """Upload every file under `local_dir` to `uri`, skipping objects already there with the same size."""
    root = Path(local_dir)
    if not root.is_dir():
        raise ConfigError(f"--from {root}: no such directory")
    bucket, prefix = split_s3a(uri)
    client = s3_client()
    ensure_bucket(client, bucket)
    try:
        existing = list_sizes(client, bucket, prefix)
    except _s3_failures() as exc:
        raise explain(exc, client, bucket) from None

    files = list(_local_files(root))
    todo = [(p, _key(prefix, rel), p.stat().st_size) for p, rel in files]
    todo = [(p, key, size) for p, key, size in todo if existing.get(key) != size]
    total, done = len(files), len(files) - len(todo)
    if progress:
        progress(done, total)

    def put(path: Path, key: str, size: int) -> int:
        if size >= MULTIPART_FROM:
            client.upload_file(str(path), bucket, key)
        else:
            client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        return size

    sent = 0
    with ThreadPoolExecutor(max_workers=UPLOAD_WORKERS, thread_name_prefix="s3-upload") as pool:
        pending: set[Future[int]] = set()
        queue = iter(todo)
        try:
            while True:
                for item in queue:
                    pending.add(pool.submit(put, *item))
                    if len(pending) >= UPLOAD_WORKERS * 4:
                        break
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    sent += fut.result()
                    done += 1
                if progress:
                    progress(done, total)
        except _s3_failures() as exc:
            for fut in pending:
                fut.cancel()
            raise explain(exc, client, bucket) from None
    return UploadSummary(files=total, uploaded=len(todo), skipped=total - len(todo), bytes_uploaded=sent)


def preflight(uri: str, must_exist: bool, what: str | None = None) -> None:
    """Before Spark starts: the endpoint answers, the credentials work and the bucket exists.

    `must_exist=True` is for a landing zone: the prefix must also hold song_data/ or log_data/ objects
    (SourceError otherwise). `must_exist=False` is for a warehouse: the prefix may be empty, but the
    bucket must exist (ConfigError, telling how to create it).
    """
    what = what or ("--source" if must_exist else "--warehouse")
    error: type[LakehouseError] = SourceError if must_exist else ConfigError
    bucket, prefix = split_s3a(uri)
    client = s3_client()
    folder = f"{prefix}/" if prefix else ""
    try:
        # One request answers reachability, credentials, bucket and (with the delimiter) the folders.
        page = client.list_objects_v2(Bucket=bucket, Prefix=folder, Delimiter="/", MaxKeys=1000)
    except _s3_failures() as exc:
        raise explain(exc, client, bucket, error) from None
    if not must_exist:
        return
    folders = {p["Prefix"][len(folder):].rstrip("/") for p in page.get("CommonPrefixes", [])}
    if folders & set(LANDING_FOLDERS):
        return
    if not folders and not page.get("Contents"):
        raise SourceError(f"{what} {uri}: nothing under this prefix in bucket {bucket!r} (upload with `lakehouse upload`)")
    if page.get("IsTruncated"):
        # More than 1000 entries at this level: ask for the two folders directly.
        for name in LANDING_FOLDERS:
            try:
                hit = client.list_objects_v2(Bucket=bucket, Prefix=f"{folder}{name}/", MaxKeys=1)
            except _s3_failures() as exc:
                raise explain(exc, client, bucket, error) from None
            if hit.get("KeyCount"):
                return
    raise SourceError(f"{what} {uri}: holds neither song_data/ nor log_data/ (is it the landing zone?)")
