"""The bucket-creation step of docker-compose.yml (service storage-init), run as compose runs it, against a
real S3 HTTP endpoint (moto's server; SeaweedFS itself is not available on the test machines)."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from scripts.harness import free_port
from shared.config import PROJECT_ROOT


def compose_command() -> list[str]:
    with open(os.path.join(PROJECT_ROOT, "docker-compose.yml")) as f:
        return yaml.safe_load(f)["services"]["storage-init"]["command"]


def run(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    command = compose_command()
    assert command[:3] == ["python", "-m", "shared.storage.create_bucket"]
    return subprocess.run(
        [sys.executable, *command[1:], *extra],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": PROJECT_ROOT, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_compose_step_creates_the_bucket_and_running_it_again_succeeds(s3_server):
    bucket = f"compose-init-{free_port()}"
    env = {**s3_server.env, "STORAGE_URL": f"s3://{bucket}/batches"}
    first, again = run(env), run(env)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr
    assert bucket in {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}


def test_it_fails_when_the_endpoint_never_answers():
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "STORAGE_URL": "s3://nobody/batches"}
    env |= {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"}
    result = run(env, "--wait-s", "2")
    assert result.returncode != 0 and "could not create bucket" in result.stderr
