from __future__ import annotations

from lakehouse.session import redacted, s3a_conf


def test_secrets_are_redacted_when_logged() -> None:
    conf = {"spark.hadoop.fs.s3a.secret.key": "abc", "spark.hadoop.fs.s3a.access.key": "AKIA",
            "spark.hadoop.fs.s3a.session.token": "t", "spark.hadoop.fs.s3a.aws.credentials.provider": "Default",
            "spark.master": "local[2]"}
    assert redacted(conf) == {**conf, "spark.hadoop.fs.s3a.secret.key": "***", "spark.hadoop.fs.s3a.access.key": "***",
                              "spark.hadoop.fs.s3a.session.token": "***"}


def test_s3a_settings_follow_the_endpoint_env() -> None:
    assert "fs.s3a.endpoint" not in s3a_conf({})
    conf = s3a_conf({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9000", "AWS_REGION": "eu-west-1"})
    assert conf["fs.s3a.endpoint"] == "http://127.0.0.1:9000"
    assert conf["fs.s3a.path.style.access"] == "true"
    assert conf["fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["fs.s3a.endpoint.region"] == "eu-west-1"
    assert conf["fs.s3a.input.stream.type"] == "classic"
    # Credentials never come from settings: only the provider chain.
    assert not any("secret" in k or "access.key" in k for k in conf)
