"""The client as users get it: `pip install ./client` into a fresh venv (no numpy, no service code), then the
`inferq` command and the package against running services, one of them with API keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared import keys
from shared.config import PROJECT_ROOT
from tests.support import Service, copy_models, wait_until

pytestmark = pytest.mark.e2e

API_KEY = "package-key-0001"
# What `pip install ./client` may bring: httpx and what httpx needs, nothing of the service's.
HTTPX_AND_ITS_DEPENDENCIES = {
    "anyio",
    "certifi",
    "exceptiongroup",
    "h11",
    "httpcore",
    "httpx",
    "idna",
    "inferq",
    "sniffio",
    "typing-extensions",
}


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the client installed from a copy of client/ (the build writes beside its sources)."""
    root = tmp_path_factory.mktemp("client-package")
    source = shutil.copytree(
        Path(PROJECT_ROOT) / "client",
        root / "client",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    # pip as configured on this machine and on CI: the same package registry, no other network.
    subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "--quiet", str(source)], check=True, timeout=600)
    return root / "venv"


@pytest.fixture(scope="module")
def keyed(make_module_service, service) -> Service:
    """A service with API keys and no worker (jobs stay queued), on the model the session's worker advertised."""
    keyed = make_module_service(workers=0, api_keys=API_KEY)
    copy_models(service.redis, keyed.redis)
    return keyed


def run(venv: Path, *args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """A command of the venv, with none of this repo on its path."""
    clean = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], env=clean, capture_output=True, text=True, timeout=120, **kwargs
    )


def test_pip_install_brings_only_httpx_and_the_package_imports_alone(venv):
    installed = run(venv, "python", "-m", "pip", "list", "--format", "json")
    names = {p["name"].lower().replace("_", "-") for p in json.loads(installed.stdout)} - {"pip", "setuptools", "wheel"}
    assert names <= HTTPX_AND_ITS_DEPENDENCIES, names
    imported = run(
        venv,
        "python",
        "-c",
        "import sys, inferq; print(inferq.__file__); assert not {'numpy', 'tqdm', 'shared', 'api'} & set(sys.modules)",
        cwd="/",
    )
    assert imported.returncode == 0, imported.stderr
    assert str(venv) in imported.stdout  # the installed copy, not the repo's


def test_the_console_script_and_python_m_show_the_default_url(venv):
    for command in (["inferq", "--help"], ["python", "-m", "inferq", "--help"]):
        shown = run(venv, *command)
        assert shown.returncode == 0 and "http://127.0.0.1:8000" in shown.stdout
        assert "--api-key" in shown.stdout and "cancel" in shown.stdout
    assert (
        "http://queue.example:9000"
        in run(venv, "inferq", "--help", env={"INFERQ_URL": "http://queue.example:9000"}).stdout
    )


def test_the_installed_cli_predicts_submits_and_cancels_with_an_api_key(venv, service, keyed, digits):
    rows = json.dumps(digits[0][:2].tolist())
    predicted = run(venv, "inferq", "--url", service.base_url, "predict", "-", input=rows)
    assert predicted.returncode == 0, predicted.stderr
    assert [max(range(10), key=p.__getitem__) for p in json.loads(predicted.stdout)] == digits[1][:2].tolist()

    refused = run(venv, "inferq", "--url", keyed.base_url, "submit", "-", input=rows)
    assert refused.returncode == 1 and refused.stderr.startswith("error: 401 unauthorized")
    job_id = json.loads(
        run(venv, "inferq", "--url", keyed.base_url, "--api-key", API_KEY, "submit", "-", input=rows).stdout
    )["id"]
    by_env = {"INFERQ_URL": keyed.base_url, "INFERQ_API_KEY": API_KEY}
    assert json.loads(run(venv, "inferq", "status", job_id, env=by_env).stdout)["status"] == "queued"
    cancelled = run(venv, "inferq", "cancel", job_id, env=by_env)
    assert cancelled.returncode == 0 and json.loads(cancelled.stdout)["status"] == "canceled"
    again = run(venv, "inferq", "cancel", job_id, env=by_env)
    assert again.returncode == 1 and "409 conflict" in again.stderr


def test_an_unreachable_service_is_one_line_and_exit_status_1(venv):
    done = run(venv, "inferq", "--url", "http://127.0.0.1:9", "status", "0" * 32)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip() == f"error: GET http://127.0.0.1:9/result/{'0' * 32}: could not connect: "
        "[Errno 111] Connection refused (6 attempts)"
    )


def test_batch_upload_wait_output_exits_1_when_the_batch_does_not_complete(venv, keyed, digits, tmp_path):
    (tmp_path / "rows.ndjson").write_text("".join(json.dumps(row) + "\n" for row in digits[0][:20].tolist()))
    env = {"INFERQ_URL": keyed.base_url, "INFERQ_API_KEY": API_KEY}
    before = set(keyed.redis.scan_iter(keys.batch("*")))
    clean = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", **env}
    upload = subprocess.Popen(
        [str(venv / "bin" / "inferq"), "batch", "upload", "rows.ndjson", "--wait", "--output", "out.ndjson", "--quiet"],
        cwd=tmp_path,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        created = wait_until(lambda: set(keyed.redis.scan_iter(keys.batch("*"))) - before, 30)
        batch_id = next(iter(created)).decode().rsplit(":", 1)[-1]
        wait_until(
            lambda: (
                keyed.http.get(f"/batches/{batch_id}", headers={"Authorization": f"Bearer {API_KEY}"}).json()["status"]
                == "queued"
            ),
            30,
        )
        keyed.http.delete(f"/batches/{batch_id}", headers={"Authorization": f"Bearer {API_KEY}"})
        _, stderr = upload.communicate(timeout=60)
    finally:
        upload.kill()
    assert upload.returncode == 1
    assert f"batch {batch_id} is cancelled, not completed" in stderr
