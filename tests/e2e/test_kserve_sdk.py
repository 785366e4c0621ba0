"""KServe's own Python SDK (the `kserve` package) against the real service, unchanged: its REST client with
protocol v1 (TF Serving-style predict) and v2 (Open Inference Protocol, JSON and binary tensors) and its gRPC
client, including the liveness and readiness calls.

The SDK runs in a child process (tests/kserve_sdk_client.py): the interpreter of this venv when `kserve` is
installed here (requirements-dev.txt), else the one of `.kserve-venv` in the project root if that exists
(a separate venv, for machines where the SDK's dependencies should not join the shared one).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from shared.config import PROJECT_ROOT
from tests.support import Service

pytestmark = pytest.mark.e2e

SEPARATE_VENV = os.path.join(PROJECT_ROOT, ".kserve-venv", "bin", "python")


def sdk_python() -> str | None:
    if importlib.util.find_spec("kserve") is not None:
        return sys.executable
    return SEPARATE_VENV if os.path.exists(SEPARATE_VENV) else None


@pytest.fixture(scope="module")
def grpc_service(make_module_service) -> Service:
    return make_module_service().start_grpc()


def run_sdk(service: Service, rows: np.ndarray) -> dict:
    python = sdk_python()
    if python is None:
        pytest.skip("the kserve SDK is not installed (pip install -r requirements-dev.txt, or a .kserve-venv)")
    request = {"base_url": service.base_url, "grpc": service.grpc_target, "model": "digits", "rows": rows.tolist()}
    result = subprocess.run(
        [python, os.path.join(PROJECT_ROOT, "tests", "kserve_sdk_client.py")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def answers(grpc_service, digits) -> dict:
    x, _ = digits
    return run_sdk(grpc_service, x[:4].astype(np.float32))


@pytest.mark.parametrize("client", ["rest_v1", "rest_v2", "grpc"])
def test_liveness_and_model_readiness_calls_answer_true(answers, client):
    assert answers[client]["live"] is True
    assert answers[client]["model_ready"] is True
    if client != "rest_v1":  # v1 has no server readiness call in the SDK
        assert answers[client]["server_ready"] is True
    assert answers[client]["unknown_model_ready"] is False


@pytest.mark.parametrize("call", ["rest_v1", "rest_v2_json", "rest_v2_binary", "grpc"])
def test_inference_through_each_client_gives_the_models_predictions(answers, digits, call):
    _, y = digits
    client = call.removesuffix("_json").removesuffix("_binary")
    predictions = np.asarray(answers[client]["predictions" + call.removeprefix(client)])
    assert predictions.shape == (4, 10)
    assert list(predictions.argmax(axis=1)) == list(y[:4])
