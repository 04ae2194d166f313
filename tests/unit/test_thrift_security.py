"""Sign-in settings, password files and their hashes (the Java provider checks the same format)."""

from __future__ import annotations

import dataclasses
import io
import re
import stat
import subprocess
from pathlib import Path

import pytest

from lakehouse import deps
from lakehouse.config import load_settings
from lakehouse.endpoint import security as sec
from lakehouse.errors import ConfigError


def _settings(**env: str):
    return load_settings("local", {}, environ={f"LAKEHOUSE_THRIFT_{k.upper()}": v for k, v in env.items()})


def test_thrift_settings_resolve_and_reject_unknown_modes() -> None:
    s = _settings(auth="ldap", tls="true", ldap_url="ldap://127.0.0.1:389", ldap_base_dn="ou=people,dc=x")
    assert (s.thrift_auth, s.thrift_tls, s.thrift_ldap_url, s.thrift_ldap_base_dn) == ("ldap", True, "ldap://127.0.0.1:389", "ou=people,dc=x")
    assert (_settings().thrift_auth, _settings().thrift_tls) == ("none", False)
    with pytest.raises(ConfigError, match=r"thrift\.auth 'kerberos' is not one of none, password-file, ldap"):
        _settings(auth="kerberos")
    with pytest.raises(ConfigError, match=r"thrift\.tls must be true or false"):
        _settings(tls="maybe")


@pytest.fixture(autouse=True)
def fewer_iterations(monkeypatch: pytest.MonkeyPatch) -> None:
    """600k PBKDF2 rounds cost ~0.5 s a hash; the format and the check are the same with fewer."""
    monkeypatch.setattr(sec, "PBKDF2_ITERATIONS", 1000)


def test_hashes_are_salted_and_verify() -> None:
    first, second = sec.hash_password("pässword"), sec.hash_password("pässword")
    assert first != second and first.startswith("pbkdf2-sha256:1000:")
    assert sec.verify_password(first, "pässword") and not sec.verify_password(first, "password")


def test_add_user_writes_a_private_file_and_replaces_a_user(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "users"
    assert sec.add_user(path, "ana", "one") is False
    assert sec.add_user(path, "bo", "two") is False
    assert sec.add_user(path, "ana", "three") is True
    users = sec.read_users(path)
    assert sorted(users) == ["ana", "bo"] and sec.verify_password(users["ana"], "three")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ConfigError, match="user name 'a:b'"):
        sec.add_user(path, "a:b", "x")
    path.write_text("ana:not-a-hash\n")
    with pytest.raises(ConfigError, match=r"users:1: not a"):
        sec.read_users(path)


def test_a_piped_password_is_the_first_line_of_stdin() -> None:
    assert sec.read_new_password("ana", io.StringIO("s3cret pass\nignored\n")) == "s3cret pass"
    with pytest.raises(ConfigError, match="no password on stdin"):
        sec.read_new_password("ana", io.StringIO(""))


def test_preflight_refuses_what_cannot_work(tmp_path: Path) -> None:
    base = dataclasses.replace(_settings(), thrift_password_file=str(tmp_path / "users"))
    cases = [
        (dict(thrift_host="0.0.0.0"), "not a loopback address and thrift.auth is none"),
        (dict(thrift_host="10.1.2.3"), "refusing to serve without sign-in"),
        (dict(thrift_auth="password-file"), "does not exist: add a user"),
        (dict(thrift_auth="ldap"), "thrift.ldap_url is empty"),
        (dict(thrift_auth="ldap", thrift_ldap_url="http://x"), "expected ldap://HOST[:PORT]"),
        (dict(thrift_auth="ldap", thrift_ldap_url="ldap://x"), "set thrift.ldap_base_dn"),
        (dict(thrift_auth="ldap", thrift_ldap_url="ldap://x", thrift_ldap_user_pattern="cn=admin"), "each ':'-separated pattern"),
        (dict(thrift_tls=True), "thrift.keystore is not set"),
        (dict(thrift_auth="password-file", thrift_password_file=str(Path(sec.__file__).parent / "users")), "inside the project checkout"),
    ]
    for changes, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            sec.preflight(dataclasses.replace(base, **changes))
    (tmp_path / "users").write_text("# nobody yet\n")
    with pytest.raises(ConfigError, match="has no users"):
        sec.preflight(dataclasses.replace(base, thrift_auth="password-file"))
    assert sec.is_loopback("127.0.0.2") and sec.is_loopback("::1") and sec.is_loopback("localhost")
    assert not sec.is_loopback("0.0.0.0")


def test_the_java_provider_accepts_exactly_what_python_wrote(tmp_path: Path) -> None:
    jar = deps.endpoint_jar()
    if not jar.exists():
        pytest.skip(f"{jar} is built by `make setup`")
    path = tmp_path / "users"
    sec.add_user(path, "ana", "pässword with spaces")
    jars = sec.deps._pyspark_jars_dir()
    classpath = ":".join(map(str, [jar, *jars.glob("spark-hive-thriftserver_*.jar"), *jars.glob("slf4j-api-*.jar")]))
    proc = subprocess.run(["java", "-cp", classpath, sec.AUTHENTICATOR_CLASS, str(path),
                           "ana", "pässword with spaces", "ana", "pässword", "bob", "pässword with spaces"],
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.splitlines() == ["ok", "wrong password", "unknown user"], proc.stderr
