"""A real S3-compatible server (moto's) on 127.0.0.1 for the object-storage tests, started and
stopped by the tests themselves. It checks credentials: the fixture makes an IAM user with an
access key, and a request signed with any other key is refused as AWS S3 would refuse it.

The server's address and key reach s3fs the usual way, through the environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``), so commands started in a
subprocess by a test use it too."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class S3Server:
    endpoint: str
    key: str
    secret: str

    @property
    def env(self) -> dict[str, str]:
        """The variables that point s3fs (botocore) at this server with a valid key."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def new_bucket(self) -> str:
        """A new empty bucket; its URL ``s3://name``."""
        import s3fs

        name = f"test-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(key=self.key, secret=self.secret, endpoint_url=self.endpoint, skip_instance_cache=True).mkdir(
            name
        )
        return f"s3://{name}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def s3_server():
    """Start moto's S3 server on 127.0.0.1 with credential checks, yield it, stop it."""
    import boto3

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # the first three requests (making the test user) are let through unsigned, every later one is checked
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        iam = boto3.client(
            "iam", endpoint_url=endpoint, aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
        )
        iam.create_user(UserName="electra")
        key = iam.create_access_key(UserName="electra")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="electra", PolicyName="all", PolicyDocument=json.dumps(policy))
        yield S3Server(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        process.terminate()
        process.wait(10)
