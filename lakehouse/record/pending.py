"""What landed and is not yet in bronze, told without Spark or a JVM (`lakehouse sources pending`).

The landing zone is listed on the driver by the listing function a run uses (listing.py: a local folder, or
S3 in ListObjectsV2 pages) and compared, as a run compares it, with `bronze.landed_files`, read from its copy
cached in `<warehouse>/_system/landed_files.index`. The copy names the table version it was written at; the
table's version is the highest commit file name in its Delta log (`_delta_log/NNNNNNNNNNNNNNNNNNNN.json`),
and commits after the copy that change no data (OPTIMIZE, VACUUM, a property) leave it current. When a
later commit did change the table (a run that stopped before it refreshed the copy), the copy is stale:
the answer is then "pending" (the next run reads the table itself and refreshes the copy), never
"nothing pending" on a guess.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlparse

from lakehouse import tables as T
from lakehouse.config import Settings
from lakehouse.errors import SourceError
from lakehouse.record import bronze, landing
from lakehouse.record.listing import list_landing

COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
SOURCES = (bronze.SONGS_SOURCE, bronze.EVENTS_SOURCE)


@dataclass(frozen=True)
class PendingFile:
    """A landed file bronze has not read: `new`, or `landed again` (a known name in a new version: ETag or time)."""

    source: str
    path: str
    modified_ms: int
    reason: str


@dataclass
class Pending:
    """The answer: the files pending, and how current the record they were compared with is."""

    files: list[PendingFile] = field(default_factory=list)
    table_version: int = -1  # bronze.landed_files' latest version (-1: no table yet)
    index_version: int = -1  # the version the cached copy was written at (-1: none)
    stale: bool = False  # the table changed data since the copy: a run is due to bring it up to date
    listed: int = 0  # landed files the listing saw

    @property
    def due(self) -> bool:
        """Whether a run has work: files pending, or a record to bring up to date."""
        return bool(self.files) or self.stale


class WarehouseFiles:
    """Small files of a warehouse read without a JVM: the local file system, or S3 through boto3."""

    def __init__(self, warehouse: str) -> None:
        self.warehouse = warehouse
        self.s3 = warehouse.startswith("s3a://")

    def read(self, rel: str) -> str | None:
        uri = f"{self.warehouse}/{rel}"
        if not self.s3:
            path = urlparse(uri).path
            try:
                with open(path, encoding="utf-8") as fh:
                    return fh.read()
            except FileNotFoundError:
                return None
        from lakehouse.storage import explain, shared_s3_client, split_s3a

        bucket, key = split_s3a(uri)
        client = shared_s3_client()
        try:
            return str(client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8"))
        except client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            raise explain(exc, client, bucket, SourceError) from None

    def names(self, rel_dir: str, after: str = "") -> list[str]:
        """File names in a folder that sort after `after` (S3: in pages of 1,000, no request per object)."""
        from lakehouse.storage import list_folder

        return list_folder(f"{self.warehouse}/{rel_dir}", after, SourceError).files

    def commits(self, table_dir: str, after: str = "") -> list[int]:
        """The versions of a Delta table's commit files (`_delta_log/NNN.json`) named after `after`, sorted (empty: no table)."""
        return sorted(int(m.group(1)) for n in self.names(f"{table_dir}/_delta_log", after) if (m := COMMIT_FILE.match(n)))


def commit_name(version: int) -> str:
    return f"{version:020d}.json"


def changes_data(commit: str) -> bool:
    """Whether a Delta commit (its JSON lines) adds or removes rows: OPTIMIZE and VACUUM do not."""
    for line in commit.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        if "cdc" in action:
            return True
        for kind in ("add", "remove"):
            if kind in action and action[kind].get("dataChange", True):
                return True
    return False


def index_state(files: WarehouseFiles) -> tuple[landing.LandedIndex, int, bool]:
    """(the cached index, the table's version, whether the table changed data since the copy)."""
    table_dir = f"{T.LANDED_FILES.layer}/{T.LANDED_FILES.name}"
    log_dir = f"{table_dir}/_delta_log"
    cached = landing.LandedIndex.from_cache(files.read(landing.LandedIndex.cache_uri("_system")))
    after = commit_name(cached.version) if cached is not None and cached.version >= 0 else ""
    versions = files.commits(table_dir, after)
    if cached is None:
        table_version = versions[-1] if versions else -1
        # No copy: an empty index is right only while the table holds no file version (its CREATE alone).
        stale = any(changes_data(files.read(f"{log_dir}/{commit_name(v)}") or "") for v in versions)
        return landing.LandedIndex(-1), table_version, stale
    table_version = versions[-1] if versions else cached.version
    stale = False
    for version in range(cached.version + 1, table_version + 1):
        text = files.read(f"{log_dir}/{commit_name(version)}")
        if text is None or changes_data(text):  # a commit gone from the log (cleaned up) is a change unseen
            stale = True
            break
    return cached, table_version, stale


def pending(settings: Settings) -> Pending:
    """The landed files bronze has not read, from the driver's listing and the cached `bronze.landed_files`."""
    # The listing a run makes on the driver (lakehouse.record.listing): os.scandir, or S3 in ListObjectsV2 pages.
    index, table_version, stale = index_state(WarehouseFiles(settings.warehouse))
    compared = index.compare(list_landing(settings.source, SOURCES))
    files = [PendingFile(source, path, v.ms, "new") for source, paths in compared.new.items() for path, v in paths.items()]
    files += [PendingFile(source, unquote(path), v.ms, "landed again")
              for source, paths in compared.moved.items() for path, v in paths.items()]
    files.sort(key=lambda f: (f.source, f.path))
    return Pending(files, table_version, index.version, stale, sum(compared.seen.values()))
