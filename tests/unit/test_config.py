from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.config import load_settings, normalize_uri
from lakehouse.errors import ConfigError


def test_flag_beats_env_beats_file_beats_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dev.toml").write_text('warehouse = "/from/file"\nsource = "/src/file"\n[spark]\nshuffle_partitions = 8\n')
    monkeypatch.setenv("LAKEHOUSE_CONF_DIR", str(tmp_path))
    env = {"LAKEHOUSE_SOURCE": "/src/env"}
    s = load_settings("dev", {"warehouse": "/from/flag"}, environ=env)
    assert (s.warehouse, s.source, s.spark_shuffle_partitions, s.thrift_port) == ("file:/from/flag", "file:/src/env", 8, 10000)
    assert s.origins["warehouse"].startswith("flag")
    assert s.origins["source"] == "environment variable LAKEHOUSE_SOURCE"
    assert s.origins["spark.shuffle_partitions"].endswith("dev.toml")
    assert s.origins["thrift.port"] == "default"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/tmp/x/", "file:/tmp/x"),
        ("file:///tmp/x", "file:/tmp/x"),
        ("file:/tmp/x", "file:/tmp/x"),
        ("s3a://my-bucket/some/prefix/", "s3a://my-bucket/some/prefix"),
    ],
)
def test_uris_are_normalised(value: str, expected: str) -> None:
    assert normalize_uri(value, "--warehouse") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("s3://bucket/x", "use the s3a:// scheme"),
        ("hdfs://nn/x", "unsupported scheme"),
        ("s3a://Bad_Bucket/x", "not a valid S3 bucket name"),
        ("  ", "is empty"),
    ],
)
def test_bad_uris_are_rejected_clearly(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        normalize_uri(value, "--warehouse")


def test_bad_values_name_their_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_CONF_DIR", str(tmp_path))
    (tmp_path / "bad.toml").write_text("[spark]\nshuffle_partitions = 'many'\n")
    with pytest.raises(ConfigError, match=r"bad.toml: spark.shuffle_partitions must be a whole number"):
        load_settings("bad", environ={})
    (tmp_path / "typo.toml").write_text("warehose = '/x'\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings("typo", environ={})
    with pytest.raises(ConfigError, match="LAKEHOUSE_THRIFT_PORT"):
        load_settings("local", environ={"LAKEHOUSE_THRIFT_PORT": "http"})
    with pytest.raises(ConfigError, match="no file"):
        load_settings("nowhere", environ={})
    with pytest.raises(ConfigError, match=r"LAKEHOUSE_SPARK_CODEGEN: spark.codegen 'sometimes' is not one of auto, on, off"):
        load_settings("local", environ={"LAKEHOUSE_SPARK_CODEGEN": "sometimes"})
