"""Settings: command-line flag > LAKEHOUSE_* environment variable > conf/<env>.toml > default."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lakehouse.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("bronze", "silver", "gold")
THRIFT_AUTH_MODES = ("none", "password-file", "ldap")
JIT_MODES = ("quick", "lean", "full")
CODEGEN_MODES = ("auto", "on", "off")
DISCOVERY_MODES = ("list", "queue")
# memory: tables registered by location in each process; embedded: the SQL endpoint keeps a Derby metastore of
# its own (other processes stay in memory); postgres: one metastore for every JVM.
CATALOGS = ("memory", "embedded", "postgres")


@dataclass(frozen=True)
class Setting:
    """One setting: its dotted key in the TOML file, its type and default."""

    key: str
    kind: type
    default: Any
    help: str

    @property
    def env_var(self) -> str:
        return "LAKEHOUSE_" + self.key.replace(".", "_").upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("source", str, "lakehouse-data/landing", "landing zone URI (local path, file:// or s3a://)"),
    Setting("warehouse", str, "lakehouse-data/warehouse", "warehouse URI (local path, file:// or s3a://)"),
    Setting("spark.master", str, "local[2]", "Spark master when not launched by spark-submit"),
    Setting("spark.driver_memory", str, "4g", "driver memory when not launched by spark-submit"),
    Setting("spark.shuffle_partitions", int, 4, "spark.sql.shuffle.partitions"),
    Setting("spark.driver_jit", str, "quick", "driver JIT when not launched by spark-submit: quick (C1 only), lean (C1 + C2, less inlining) or full (C1 + C2)"),
    Setting("spark.codegen", str, "auto",
            "the flows' queries with generated code: auto (interpreted after an incremental bronze of few rows), on or off"),
    Setting("run.lock_wait_seconds", int, 0, "how long a run waits for another run's lock"),
    Setting("thrift.host", str, "127.0.0.1", "address the Thrift server binds to"),
    Setting("thrift.port", int, 10000, "port of the Thrift server"),
    Setting("thrift.auth", str, "none", "sign-in of the Thrift server: none (loopback only), password-file or ldap"),
    Setting("thrift.password_file", str, "~/.config/lakehouse/thrift-users", "users and salted hashes (thrift.auth = password-file)"),
    Setting("thrift.ldap_url", str, "", "directory to bind against (thrift.auth = ldap), e.g. ldaps://ldap.example.com"),
    Setting("thrift.ldap_base_dn", str, "", "users are uid=NAME,<base DN> (thrift.auth = ldap)"),
    Setting("thrift.ldap_user_pattern", str, "", "instead of the base DN: DN patterns with %s for the name, ':'-separated"),
    Setting("thrift.tls", bool, False, "serve over TLS with thrift.keystore (password: LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD)"),
    Setting("thrift.keystore", str, "", "PKCS12/JKS keystore of the Thrift server's TLS key (`lakehouse thrift cert`)"),
    Setting("discovery", str, "list", "how a run finds new landing files: list (the landing zone in pages) or queue (S3 events from SQS)"),
    Setting("queue.url", str, "", "the SQS queue of the landing bucket's S3 event notifications (discovery = queue)"),
    Setting("queue.visibility_seconds", int, 3600, "messages a run received stay hidden this long (longer than a run)"),
    Setting("listing.date_bounded", bool, False, "discovery = list: list log_data/YYYY/MM/ only from the newest month recorded on"),
    Setting("listing.lookback_months", int, 1, "with listing.date_bounded: also list this many months before the newest one"),
    Setting("reconcile.every_days", int, 7, "a run also reconciles (full listing vs the index) when the last one is older; 0: never"),
    Setting("thrift.writers", str, "", "users who may write analytics and analytics_* over JDBC, comma-separated (empty: every signed-in user)"),
    Setting("catalog", str, "embedded", "memory, embedded (a Derby metastore opened by the SQL endpoint only) or postgres (one for every JVM)"),
    Setting("metastore.url", str, "", "catalog = postgres: jdbc:postgresql://HOST:PORT/DATABASE (password: LAKEHOUSE_METASTORE_PASSWORD)"),
    Setting("metastore.user", str, "", "catalog = postgres: the metastore database's user"),
)
_BY_KEY = {s.key: s for s in SETTINGS}
# Settings that take one of a few words.
CHOICES = {"spark.driver_jit": JIT_MODES, "spark.codegen": CODEGEN_MODES, "discovery": DISCOVERY_MODES,
           "thrift.auth": THRIFT_AUTH_MODES, "catalog": CATALOGS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one invocation. URIs are normalised (file:///abs or s3a://bucket/prefix)."""

    env: str
    source: str
    warehouse: str
    spark_master: str
    spark_driver_memory: str
    spark_shuffle_partitions: int
    run_lock_wait_seconds: int
    thrift_host: str
    thrift_port: int
    thrift_auth: str = "none"
    thrift_password_file: str = ""
    thrift_ldap_url: str = ""
    thrift_ldap_base_dn: str = ""
    thrift_ldap_user_pattern: str = ""
    thrift_tls: bool = False
    thrift_keystore: str = ""
    spark_driver_jit: str = "quick"
    spark_codegen: str = "auto"
    discovery: str = "list"
    queue_url: str = ""
    queue_visibility_seconds: int = 3600
    listing_date_bounded: bool = False
    listing_lookback_months: int = 1
    reconcile_every_days: int = 7
    thrift_writers: str = ""
    catalog: str = "embedded"
    metastore_url: str = ""
    metastore_user: str = ""
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    def table_path(self, layer: str, name: str) -> str:
        """Storage location of table `layer.name` in this warehouse."""
        return f"{self.warehouse}/{layer}/{name}"

    @property
    def system_path(self) -> str:
        """Where batch plans, state and the run lock live (inside the warehouse)."""
        return f"{self.warehouse}/_system"

    @property
    def sandbox_path(self) -> str:
        """spark.sql.warehouse.dir: the analysts' schemas keep their tables here, one <schema>.db folder each."""
        return f"{self.warehouse}/_spark_warehouse"

    @property
    def is_s3(self) -> bool:
        return self.warehouse.startswith("s3a://") or self.source.startswith("s3a://")

    @property
    def writers(self) -> tuple[str, ...]:
        """`thrift.writers` as names (empty: every signed-in user)."""
        return tuple(name.strip() for name in self.thrift_writers.split(",") if name.strip())


def conf_dir() -> Path:
    return Path(os.environ.get("LAKEHOUSE_CONF_DIR", PROJECT_ROOT / "conf"))


def normalize_uri(value: str, what: str) -> str:
    """Turn a local path, file:// or s3a:// URI into a canonical URI without a trailing slash."""
    value = value.strip()
    if not value:
        raise ConfigError(f"{what} is empty")
    scheme_match = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", value)
    if scheme_match is None and value.startswith("file:"):
        value = "file://" + value[len("file:") :]
        scheme_match = re.match(r"^(file)://", value)
    if scheme_match is None:
        return "file:" + str(Path(value).expanduser().resolve())
    scheme = scheme_match.group(1).lower()
    if scheme == "file":
        # Hadoop's canonical form (file:/abs/path): Delta compares locations as strings.
        path = value[len("file://") :]
        return "file:" + str(Path(path or "/").resolve())
    if scheme == "s3a":
        rest = value[len("s3a://") :].rstrip("/")
        bucket = rest.split("/", 1)[0]
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise ConfigError(f"{what} {value!r}: {bucket!r} is not a valid S3 bucket name")
        return "s3a://" + rest
    if scheme in ("s3", "s3n"):
        raise ConfigError(f"{what} {value!r}: use the s3a:// scheme (Hadoop's S3A connector), e.g. s3a://{value.split('://', 1)[1]}")
    raise ConfigError(f"{what} {value!r}: unsupported scheme {scheme!r} (use a local path, file:// or s3a://)")


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _read_conf_file(env: str) -> tuple[dict[str, Any], Path]:
    if not re.fullmatch(r"[A-Za-z0-9_-]+", env):
        raise ConfigError(f"--env {env!r}: an environment name is letters, digits, '-' or '_'")
    path = conf_dir() / f"{env}.toml"
    if not path.exists():
        if env == "local":
            return {}, path
        known = sorted(p.stem for p in conf_dir().glob("*.toml"))
        raise ConfigError(f"--env {env!r}: no file {path} (known environments: {', '.join(known) or 'none'})")
    try:
        with path.open("rb") as fh:
            data = _flatten(tomllib.load(fh))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - set(_BY_KEY))
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(_BY_KEY)})")
    return data, path


def _coerce(setting: Setting, value: Any, origin: str) -> Any:
    if setting.kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", ""):
            return False
        raise ConfigError(f"{origin}: {setting.key} must be true or false, not {value!r}")
    if setting.kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{origin}: {setting.key} must be a whole number, not {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{origin}: {setting.key} must be a whole number, not {value!r}") from None
        if number < 0:
            raise ConfigError(f"{origin}: {setting.key} must not be negative ({number})")
        return number
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: {setting.key} must be a string, not {value!r}")
    return value


def load_settings(
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting. `overrides` holds command-line flags by dotted key (None = not given)."""
    environ = os.environ if environ is None else environ
    env = env or environ.get("LAKEHOUSE_ENV") or "local"
    file_values, file_path = _read_conf_file(env)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for setting in SETTINGS:
        flag = (overrides or {}).get(setting.key)
        if flag is not None:
            value, origin = flag, f"flag --{setting.key.split('.')[-1].replace('_', '-')}"
        elif setting.env_var in environ:
            value, origin = environ[setting.env_var], f"environment variable {setting.env_var}"
        elif setting.key in file_values:
            value, origin = file_values[setting.key], str(file_path)
        else:
            value, origin = setting.default, "default"
        values[setting.key] = _coerce(setting, value, origin)
        origins[setting.key] = origin
    for key in ("source", "warehouse"):
        values[key] = normalize_uri(values[key], f"{key} (from {origins[key]})")
    if values["thrift.port"] > 65535:
        raise ConfigError(f"{origins['thrift.port']}: thrift.port must be at most 65535")
    if not re.fullmatch(r"\d+[kmgKMG]", values["spark.driver_memory"]):
        raise ConfigError(f"{origins['spark.driver_memory']}: spark.driver_memory must look like 4g or 512m")
    if values["spark.shuffle_partitions"] < 1:
        raise ConfigError(f"{origins['spark.shuffle_partitions']}: spark.shuffle_partitions must be at least 1")
    for key, choices in CHOICES.items():
        if values[key] not in choices:
            raise ConfigError(f"{origins[key]}: {key} {values[key]!r} is not one of {', '.join(choices)}")
    if values["catalog"] == "postgres" and not re.fullmatch(r"jdbc:postgresql://[^/\s]+/\w[\w-]*(\?\S*)?", values["metastore.url"]):
        raise ConfigError(f"{origins['metastore.url']}: catalog is postgres, so metastore.url must look like "
                          f"jdbc:postgresql://HOST:PORT/DATABASE, not {values['metastore.url']!r}")
    for name in (n.strip() for n in values["thrift.writers"].split(",")):
        if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", name):
            raise ConfigError(f"{origins['thrift.writers']}: thrift.writers: {name!r} is not a user name")
    return Settings(
        env=env,
        source=values["source"],
        warehouse=values["warehouse"],
        spark_master=values["spark.master"],
        spark_driver_memory=values["spark.driver_memory"],
        spark_shuffle_partitions=values["spark.shuffle_partitions"],
        run_lock_wait_seconds=values["run.lock_wait_seconds"],
        thrift_host=values["thrift.host"],
        thrift_port=values["thrift.port"],
        thrift_auth=values["thrift.auth"],
        thrift_password_file=values["thrift.password_file"],
        thrift_ldap_url=values["thrift.ldap_url"],
        thrift_ldap_base_dn=values["thrift.ldap_base_dn"],
        thrift_ldap_user_pattern=values["thrift.ldap_user_pattern"],
        thrift_tls=values["thrift.tls"],
        thrift_keystore=values["thrift.keystore"],
        spark_driver_jit=values["spark.driver_jit"],
        spark_codegen=values["spark.codegen"],
        discovery=values["discovery"],
        queue_url=values["queue.url"],
        queue_visibility_seconds=values["queue.visibility_seconds"],
        listing_date_bounded=values["listing.date_bounded"],
        listing_lookback_months=values["listing.lookback_months"],
        reconcile_every_days=values["reconcile.every_days"],
        thrift_writers=values["thrift.writers"],
        catalog=values["catalog"],
        metastore_url=values["metastore.url"],
        metastore_user=values["metastore.user"],
        origins=origins,
    )
