"""A moto S3 server on 127.0.0.1 for one test module, and the environment pointing at it.

moto runs in server mode (real HTTP), because the JVM's S3A connector talks HTTP too. The same server
answers SQS and SNS (queue mode) and delivers the buckets' event notifications to its queues. Every request
it serves is logged (`S3Server.requests`), so that a test can count what a run asked for, by kind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest

from .helpers import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"
# Variables that could point boto3 or the AWS SDK elsewhere than the test server.
CLEARED = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
           "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")


@dataclass(frozen=True)
class Request:
    """One request the server answered: its kind (LIST, HEAD, GET, PUT, DELETE, POST, SQS, SNS), bucket and key."""

    kind: str
    bucket: str
    key: str


def classify(environ: dict[str, Any]) -> Request:
    """A request by its signature's service (sqs, sns), else by S3 method and path (a GET of a bucket is a LIST)."""
    scope = environ.get("HTTP_AUTHORIZATION", "")
    for service in ("sqs", "sns"):
        if f"/{service}/aws4_request" in scope:
            return Request(service.upper(), "", "")
    method, path = environ["REQUEST_METHOD"], unquote(environ.get("PATH_INFO", ""))
    bucket, _, key = path.lstrip("/").partition("/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    listing = method == "GET" and not key and not ({"notification", "location", "versioning", "policy", "acl"} & set(query))
    return Request("LIST" if listing else method, bucket, key)


class RequestLog:
    """What the server answered, in order; `since(mark)` counts by kind from a mark on, per bucket if asked."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()

    def add(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def mark(self) -> int:
        return len(self.requests)

    def since(self, mark: int, bucket: str | None = None) -> dict[str, int]:
        with self._lock:
            done = self.requests[mark:]
        return dict(Counter(r.kind for r in done if bucket is None or r.bucket == bucket))


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str] = field(default_factory=dict)
    requests: RequestLog = field(default_factory=RequestLog)

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

    log = RequestLog()

    class Counted(ThreadedMotoServer):  # the WSGI app wrapped: every request logged before moto answers it
        def _server_entry(self) -> None:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
            from werkzeug.serving import make_server

            app = DomainDispatcherApplication(create_backend_app)

            def counted(environ: dict[str, Any], start_response: Any) -> Any:
                log.add(classify(environ))
                return app(environ, start_response)

            self._server = make_server(self._ip_address, self._port, counted, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    port = free_port()
    server = Counted(ip_address="127.0.0.1", port=port, verbose=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ENDPOINT_URL_SQS": endpoint,
        "AWS_ENDPOINT_URL_SNS": endpoint,
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
            yield S3Server(endpoint, env, log)
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
