"""A throwaway OpenLDAP directory (slapd) on 127.0.0.1 for one test module.

slapd comes from the Debian package; when it is missing and we are root, it is installed
(`apt-get update` once, then `apt-get install slapd ldap-utils`); the test skips with the reason
only when that fails. The directory lives in a temp folder and the server is stopped afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .helpers import free_port, installed

SUFFIX = "dc=sparkify,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")


@dataclass
class LdapServer:
    url: str
    base_dn: str
    users: dict[str, str]


def _slapd() -> str | None:
    return shutil.which("slapd") or next((p for p in ("/usr/sbin/slapd",) if os.path.exists(p)), None)


def ensure_slapd() -> str:
    """The slapd binary, installed from the Debian packages when missing (root only); else skip the test."""
    return installed(_slapd, "slapd", "ldap-utils", what="slapd")


def ssha(password: str) -> str:
    """An OpenLDAP {SSHA} userPassword value."""
    salt = secrets.token_bytes(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


def _ldif(users: dict[str, str]) -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: sparkify\no: Sparkify test directory\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
    ]
    for name, password in users.items():
        entries.append(
            f"dn: uid={name},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {name}\ncn: {name}\nsn: {name}\n"
            f"userPassword: {ssha(password)}\n"
        )
    return "\n".join(entries)


@contextlib.contextmanager
def slapd_server(root: Path, users: dict[str, str]) -> Iterator[LdapServer]:
    """slapd with `users` (uid=NAME,ou=people,dc=sparkify,dc=test) on a free 127.0.0.1 port; stopped afterwards."""
    slapd = ensure_slapd()
    slapadd = shutil.which("slapadd") or "/usr/sbin/slapadd"
    data = root / "data"
    data.mkdir(parents=True)
    conf = root / "slapd.conf"
    conf.write_text("\n".join([
        *(f"include {SCHEMA_DIR / s}.schema" for s in ("core", "cosine", "inetorgperson")),
        f"pidfile {root / 'slapd.pid'}",
        f"modulepath {MODULE_DIR}",
        "moduleload back_mdb",
        "database mdb",
        f'suffix "{SUFFIX}"',
        f'rootdn "cn=admin,{SUFFIX}"',
        f"rootpw {secrets.token_hex(16)}",
        f"directory {data}",
        "access to attrs=userPassword by anonymous auth by self read by * none",
        "access to * by * read",
        "",
    ]))
    ldif = root / "base.ldif"
    ldif.write_text(_ldif(users))
    proc = subprocess.run([slapadd, "-f", str(conf), "-l", str(ldif)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"slapadd failed: {proc.stderr.strip()[-500:]}")
    port = free_port()
    log = (root / "slapd.log").open("wb")
    server = subprocess.Popen([slapd, "-d", "0", "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/"],
                              stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"slapd did not start: {(root / 'slapd.log').read_text(errors='replace')[-500:]}")
            time.sleep(0.2)
        yield LdapServer(f"ldap://127.0.0.1:{port}", PEOPLE, dict(users))
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
