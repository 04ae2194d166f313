"""Sign-in, TLS and the write policy of the SQL endpoint (see README, "SQL endpoint").

- `thrift.auth = none`: HiveServer2's NONE (any name, no password), allowed on a loopback address only.
- `thrift.auth = password-file`: HiveServer2's CUSTOM sign-in with `sparkify.lakehouse.PasswordFileAuthenticator`
  (lakehouse/endpoint/jvm/), which checks `name:pbkdf2-sha256:ITERATIONS:SALT:HASH` lines written by `add_user`.
- `thrift.auth = ldap`: HiveServer2's LDAP provider binds as `uid=NAME,<base DN>` (or the DN patterns).
- `thrift.tls`: HiveServer2 serves TLS from a PKCS12/JKS keystore whose password comes from
  `LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD` only; `make_cert` makes a self-signed one with keytool.
- Always: `sparkify.lakehouse.EndpointExtension` applies the write policy (`WritePolicy`: the lakehouse's schemas
  read-only, the analysts' sandboxes writable by their users) and refuses every read by path, and
  `sparkify.lakehouse.SettingsPolicy` lets a session change only the settings an analyst may (at session open,
  through `GuardedSessionManager`, and by SET).

The Java classes are compiled from lakehouse/endpoint/jvm/*.java by `make setup` (`python -m lakehouse.endpoint.security build`)
into `.cache/jvm/lakehouse-thrift.jar`, against the jars pyspark ships.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import ipaddress
import os
import re
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from lakehouse import deps
from lakehouse.config import PROJECT_ROOT, Settings
from lakehouse.errors import ConfigError

JAVA_SOURCES = Path(__file__).parent / "jvm"
JAVA_PACKAGE = "sparkify.lakehouse"
AUTHENTICATOR_CLASS = f"{JAVA_PACKAGE}.PasswordFileAuthenticator"
ENDPOINT_EXTENSION = f"{JAVA_PACKAGE}.EndpointExtension"
PASSWORD_FILE_PROPERTY = "lakehouse.thrift.password_file"
KEYSTORE_PASSWORD_ENV = "LAKEHOUSE_THRIFT_KEYSTORE_PASSWORD"
# A truststore holds only the server's public certificate: its password guards nothing secret.
TRUSTSTORE_PASSWORD = "changeit"
HASH_SCHEME = "pbkdf2-sha256"
PBKDF2_ITERATIONS = 600_000
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
CERT_ALIAS = "lakehouse-thrift"
TLS_SETTINGS_PREFIX = ("hive.server2.use.SSL", "hive.server2.keystore.")
CERT_DAYS = 365


# ---------------------------------------------------------------------------------------- the JVM classes
def build_jvm(target: Path | None = None) -> Path:
    """Compile lakehouse/endpoint/jvm/*.java against pyspark's jars into one jar (what `make setup` runs)."""
    return deps.compile_jar(sorted(JAVA_SOURCES.glob("*.java")), target or deps.endpoint_jar())


def require_jar() -> Path:
    """The compiled jar; a one-line error when `make setup` has not built it (or the sources are newer)."""
    jar = deps.endpoint_jar()
    if not jar.exists():
        raise ConfigError(f"{jar} is missing (the endpoint's sign-in and read-only classes): run `make setup`")
    newest = max((p.stat().st_mtime for p in JAVA_SOURCES.glob("*.java")), default=0.0)
    if newest > jar.stat().st_mtime:
        raise ConfigError(f"{jar} is older than {JAVA_SOURCES}/*.java: run `make setup` to rebuild it")
    return jar


# ---------------------------------------------------------------------------------------- paths
def _outside_checkout(path: Path, what: str) -> Path:
    """`path` resolved; an error when it lies inside the project checkout (except the git-ignored .cache/)."""
    resolved = path.expanduser().resolve()
    root, cache = PROJECT_ROOT.resolve(), deps.CACHE_DIR.resolve()
    if resolved.is_relative_to(root) and not resolved.is_relative_to(cache):
        raise ConfigError(f"{what} {resolved} is inside the project checkout: keep secrets outside the repository")
    return resolved


def password_file(settings: Settings) -> Path:
    if not settings.thrift_password_file.strip():
        raise ConfigError("thrift.password_file is empty: set it (LAKEHOUSE_THRIFT_PASSWORD_FILE or --password-file)")
    return _outside_checkout(Path(settings.thrift_password_file), "thrift.password_file")


def keystore(settings: Settings) -> Path:
    if not settings.thrift_keystore.strip():
        raise ConfigError("thrift.keystore is not set: give a keystore path (--keystore, LAKEHOUSE_THRIFT_KEYSTORE or conf)")
    return _outside_checkout(Path(settings.thrift_keystore), "thrift.keystore")


def cert_files(store: Path) -> tuple[Path, Path]:
    """The PEM certificate and the client truststore that `make_cert` writes beside the keystore."""
    return store.with_name(store.stem + "-cert.pem"), store.with_name(store.stem + "-truststore.p12")


def keystore_password(what: str = "thrift.tls") -> str:
    value = os.environ.get(KEYSTORE_PASSWORD_ENV, "")
    if not value:
        raise ConfigError(f"{what}: set the keystore password in the environment variable {KEYSTORE_PASSWORD_ENV} (never in a file of the repo)")
    if len(value) < 6:
        raise ConfigError(f"{KEYSTORE_PASSWORD_ENV}: keytool needs at least 6 characters")
    return value


# ---------------------------------------------------------------------------------------- passwords
def hash_password(password: str, salt: bytes | None = None, iterations: int | None = None) -> str:
    """`pbkdf2-sha256:ITERATIONS:SALT:HASH` (base64), as PasswordFileAuthenticator.java verifies it."""
    iterations = iterations or PBKDF2_ITERATIONS
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{HASH_SCHEME}:{iterations}:{base64.b64encode(salt).decode()}:{base64.b64encode(digest).decode()}"


def verify_password(entry: str, password: str) -> bool:
    """True when `password` matches a `hash_password` entry (the Python twin of the Java check)."""
    scheme, iterations, salt, digest = entry.split(":")
    if scheme != HASH_SCHEME:
        return False
    actual = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), base64.b64decode(salt), int(iterations))
    return secrets.compare_digest(actual, base64.b64decode(digest))


def read_users(path: Path) -> dict[str, str]:
    """user -> hash entry of a password file ({} when it does not exist)."""
    users: dict[str, str] = {}
    if not path.exists():
        return users
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, sep, entry = text.partition(":")
        if not sep or entry.count(":") != 3:
            raise ConfigError(f"{path}:{number}: not a `name:{HASH_SCHEME}:iterations:salt:hash` line")
        users[name] = entry
    return users


def check_user_name(name: str) -> str:
    if not USER_NAME.fullmatch(name):
        raise ConfigError(f"user name {name!r}: letters, digits, '.', '_', '@' or '-' (up to 64, starting with a letter or digit)")
    return name


def add_user(path: Path, name: str, password: str) -> bool:
    """Add or replace `name` in the password file (mode 0600, written atomically). True when it replaced one."""
    check_user_name(name)
    if not password:
        raise ConfigError("empty password")
    users = read_users(path)
    replaced = name in users
    users[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    body = "# lakehouse thrift users: name:" + HASH_SCHEME + ":iterations:salt:hash (`lakehouse thrift add-user NAME`)\n"
    body += "".join(f"{n}:{e}\n" for n, e in sorted(users.items()))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return replaced


def read_new_password(name: str, stdin: TextIO | None = None) -> str:
    """Ask twice on a terminal; take the first line of stdin when it is piped."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        line = stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise ConfigError("no password on stdin (pipe one line: echo \"$PASSWORD\" | lakehouse thrift add-user NAME)")
        return password
    first = getpass.getpass(f"password for {name}: ")
    if not first:
        raise ConfigError("empty password")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


# ---------------------------------------------------------------------------------------- TLS
def make_cert(store: Path, password: str, host: str) -> tuple[Path, Path]:
    """A self-signed key pair in a new PKCS12 keystore (for `host`, localhost and 127.0.0.1), its PEM
    certificate and a truststore for JDBC clients. Refuses to overwrite an existing keystore."""
    if store.exists():
        raise ConfigError(f"{store} already exists: remove it first or choose another --keystore")
    pem, truststore = cert_files(store)
    keytool = deps.java_tool("keytool")
    names = {"dns:localhost", "ip:127.0.0.1"}
    if host and host not in ("0.0.0.0", "::", "*"):
        try:
            ipaddress.ip_address(host)
            names.add(f"ip:{host}")
        except ValueError:
            names.add(f"dns:{host}")
    cn = host if host and host not in ("0.0.0.0", "::", "*") else "localhost"
    store.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (pem, truststore):
        path.unlink(missing_ok=True)
    steps = [
        [keytool, "-genkeypair", "-alias", CERT_ALIAS, "-keyalg", "RSA", "-keysize", "2048", "-validity", str(CERT_DAYS),
         "-dname", f"CN={cn}, OU=sparkify-lakehouse", "-ext", "SAN=" + ",".join(sorted(names)),
         "-storetype", "PKCS12", "-keystore", str(store), "-storepass:env", KEYSTORE_PASSWORD_ENV],
        [keytool, "-exportcert", "-rfc", "-alias", CERT_ALIAS, "-keystore", str(store),
         "-storepass:env", KEYSTORE_PASSWORD_ENV, "-file", str(pem)],
        [keytool, "-importcert", "-noprompt", "-alias", CERT_ALIAS, "-file", str(pem), "-storetype", "PKCS12",
         "-keystore", str(truststore), "-storepass", TRUSTSTORE_PASSWORD],
    ]
    env = {**os.environ, KEYSTORE_PASSWORD_ENV: password}
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
        if proc.returncode != 0:
            raise ConfigError(f"keytool {cmd[1]} failed: {(proc.stdout + proc.stderr).strip().splitlines()[-1][:300]}")
    os.chmod(store, 0o600)
    return pem, truststore


def check_keystore(store: Path, password: str) -> None:
    """A one-line error unless `store` opens with `password` and holds a private key."""
    if not store.is_file():
        raise ConfigError(f"thrift.keystore {store} does not exist (make one with `lakehouse thrift cert --keystore {store}`)")
    proc = subprocess.run(
        [deps.java_tool("keytool"), "-list", "-keystore", str(store), "-storepass:env", KEYSTORE_PASSWORD_ENV],
        capture_output=True, text=True, env={**os.environ, KEYSTORE_PASSWORD_ENV: password}, timeout=120,
    )
    if proc.returncode != 0:
        last = (proc.stdout + proc.stderr).strip().splitlines()
        raise ConfigError(f"thrift.keystore {store}: cannot open it with {KEYSTORE_PASSWORD_ENV} ({last[-1] if last else 'keytool failed'})")
    if "PrivateKeyEntry" not in proc.stdout:
        raise ConfigError(f"thrift.keystore {store} holds no private key (a truststore?): use the keystore `lakehouse thrift cert` made")


# ---------------------------------------------------------------------------------------- the server's settings
def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def preflight(settings: Settings) -> None:
    """Everything `thrift start` can check before launching Spark, each failure one line."""
    auth = settings.thrift_auth
    if auth == "none" and not is_loopback(settings.thrift_host):
        raise ConfigError(
            f"thrift.host {settings.thrift_host} is not a loopback address and thrift.auth is none: refusing to serve "
            "without sign-in; set thrift.auth to password-file or ldap (and thrift.tls), or bind to 127.0.0.1"
        )
    if auth == "password-file":
        path = password_file(settings)
        if not path.is_file():
            raise ConfigError(f"thrift.password_file {path} does not exist: add a user with `lakehouse thrift add-user NAME`")
        if not read_users(path):
            raise ConfigError(f"thrift.password_file {path} has no users: add one with `lakehouse thrift add-user NAME`")
    if auth == "ldap":
        url = settings.thrift_ldap_url.strip()
        if not url:
            raise ConfigError("thrift.auth is ldap but thrift.ldap_url is empty (e.g. ldaps://ldap.example.com)")
        if not re.fullmatch(r"ldaps?://[^\s/]+/?", url):
            raise ConfigError(f"thrift.ldap_url {url!r}: expected ldap://HOST[:PORT] or ldaps://HOST[:PORT]")
        if not settings.thrift_ldap_base_dn.strip() and not settings.thrift_ldap_user_pattern.strip():
            raise ConfigError("thrift.auth is ldap: set thrift.ldap_base_dn (users are uid=NAME,<base DN>) or thrift.ldap_user_pattern")
        pattern = settings.thrift_ldap_user_pattern.strip()
        if pattern and any("%s" not in p or "=" not in p or "," not in p for p in pattern.split(":")):
            raise ConfigError(f"thrift.ldap_user_pattern {pattern!r}: each ':'-separated pattern is a DN with %s, e.g. uid=%s,ou=people,dc=example,dc=com")
    if settings.thrift_tls:
        check_keystore(keystore(settings), keystore_password())
    require_jar()


def hive_conf(settings: Settings) -> dict[str, str]:
    """HiveServer2 settings for sign-in and TLS (the keystore password from the environment)."""
    conf: dict[str, str] = {"hive.server2.authentication": "NONE"}
    if settings.thrift_auth == "password-file":
        conf.update({
            "hive.server2.authentication": "CUSTOM",
            "hive.server2.custom.authentication.class": AUTHENTICATOR_CLASS,
            PASSWORD_FILE_PROPERTY: str(password_file(settings)),
        })
    elif settings.thrift_auth == "ldap":
        conf.update({
            "hive.server2.authentication": "LDAP",
            "hive.server2.authentication.ldap.url": settings.thrift_ldap_url.strip(),
        })
        if settings.thrift_ldap_user_pattern.strip():
            conf["hive.server2.authentication.ldap.userDNPattern"] = settings.thrift_ldap_user_pattern.strip()
        else:
            conf["hive.server2.authentication.ldap.baseDN"] = settings.thrift_ldap_base_dn.strip()
    if settings.thrift_tls:
        conf.update({
            "hive.server2.use.SSL": "true",
            "hive.server2.keystore.path": str(keystore(settings)),
            "hive.server2.keystore.password": keystore_password(),
        })
    return conf


def jdbc_params(settings: Settings) -> str:
    """What a JDBC URL needs after the database for TLS (";ssl=true;sslTrustStore=...")."""
    if not settings.thrift_tls:
        return ""
    _, truststore = cert_files(keystore(settings))
    return f";ssl=true;sslTrustStore={truststore};trustStorePassword={TRUSTSTORE_PASSWORD}"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if args != ["build"]:
        print("usage: python -m lakehouse.endpoint.security build", file=sys.stderr)
        return 2
    try:
        jar = build_jvm()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"built {jar} from {JAVA_SOURCES}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
