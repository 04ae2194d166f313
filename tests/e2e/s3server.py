"""A moto S3 server on 127.0.0.1 for one test module, and the environment pointing at it.

moto runs in server mode (real HTTP), because the JVM's S3A connector talks HTTP too.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from .helpers import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"
# Variables that could point boto3 or the AWS SDK elsewhere than the test server.
CLEARED = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
           "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str] = field(default_factory=dict)

    def set_auth(self, free_requests: float) -> None:
        """moto checks signatures and IAM policies after `free_requests` more requests (inf = never)."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=str(free_requests).encode(),
                                     headers={"Content-Type": "text/plain"}, method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()


@contextlib.contextmanager
def moto_server(tmp_home: str) -> Iterator[S3Server]:
    """Start a moto server on a free local port; set AWS_* so boto3 (and the CLI) use it; undo both after."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_REGION": REGION,
        # No profile files of the machine, no instance-metadata lookups.
        "AWS_CONFIG_FILE": f"{tmp_home}/aws-config",
        "AWS_SHARED_CREDENTIALS_FILE": f"{tmp_home}/aws-credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in CLEARED:
                mp.delenv(name, raising=False)
            for name, value in env.items():
                mp.setenv(name, value)
            yield S3Server(endpoint, env)
    finally:
        server.stop()


def s3a_test_conf(endpoint: str) -> dict[str, str | None]:
    """S3A settings for the shared test SparkSession: the project's s3a_conf() plus static test credentials.

    The JVM's environment was fixed when the session started, so the provider chain cannot see the
    AWS_* variables set for the test: the credentials go into the Hadoop configuration instead.
    """
    from lakehouse.session import s3a_conf

    conf: dict[str, str | None] = dict(s3a_conf({"AWS_ENDPOINT_URL_S3": endpoint, "AWS_REGION": REGION}))
    conf.update(
        {
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.access.key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "fs.s3a.secret.key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        }
    )
    return conf
