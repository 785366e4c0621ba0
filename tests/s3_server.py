"""A real S3 HTTP endpoint on loopback for the tests: moto's standalone server (`python -m moto.server`) as a
subprocess, which can be stopped and started again on the same port to play an outage.

moto keeps objects in memory, so a restarted server is empty; `snapshot`/`restore` carry a bucket's objects
across a restart when a test needs the store to come back with its data.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import boto3
import httpx

from tests.support import free_port, wait_until

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    """moto's S3 server on 127.0.0.1:`port`, its log in `log_path`."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to use this server through boto3's standard variables."""
        return {"AWS_ENDPOINT_URL": self.url, **CREDENTIALS}

    def start(self) -> S3Server:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        wait_until(self._answers, 30, 0.1)
        return self

    def _answers(self) -> bool:
        assert self.process.poll() is None, f"moto server exited: {self.log_path.read_text()[-2000:]}"
        try:
            return httpx.get(f"{self.url}/moto-api/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def snapshot(self, bucket: str) -> dict[str, bytes]:
        """Every object of `bucket`, by key."""
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}

    def restore(self, bucket: str, objects: dict[str, bytes]) -> None:
        """Create `bucket` (on a restarted, empty server) with `objects`."""
        client = self.client()
        client.create_bucket(Bucket=bucket)
        for key, body in objects.items():
            client.put_object(Bucket=bucket, Key=key, Body=body)
