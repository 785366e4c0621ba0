"""Drives the service with KServe's own SDK, unchanged (run by tests/e2e/test_kserve_sdk.py in a child
process, possibly under another venv's interpreter): reads {base_url, grpc, model, rows} as JSON on stdin,
prints what each client answered as JSON on stdout."""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig


def v2_request(model: str, rows: np.ndarray, binary: bool) -> InferRequest:
    tensor = InferInput("pixels", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    return InferRequest(model_name=model, infer_inputs=[tensor])


async def rest_v1(base: str, model: str, rows: np.ndarray) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v1", timeout=60))
    try:
        result = await client.infer(base, {"instances": rows.tolist()}, model_name=model)
        return {
            "live": await client.is_server_live(base),
            "model_ready": await client.is_model_ready(base, model),
            "unknown_model_ready": await _ready_or_false(client.is_model_ready(base, "no-such-model")),
            "predictions": result["predictions"],
        }
    finally:
        await client.close()


async def rest_v2(base: str, model: str, rows: np.ndarray) -> dict:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    try:
        outputs = {}
        for binary in (False, True):
            response = await client.infer(base, v2_request(model, rows, binary), model_name=model)
            outputs["_binary" if binary else "_json"] = response.outputs[0].as_numpy().tolist()
        return {
            "live": await client.is_server_live(base),
            "server_ready": await client.is_server_ready(base),
            "model_ready": await client.is_model_ready(base, model),
            "unknown_model_ready": await client.is_model_ready(base, "no-such-model"),
            **{"predictions" + k: v for k, v in outputs.items()},
        }
    finally:
        await client.close()


async def grpc(target: str, model: str, rows: np.ndarray) -> dict:
    client = InferenceGRPCClient(target, timeout=60)
    try:
        response = await client.infer(v2_request(model, rows, binary=True))
        return {
            "live": await client.is_server_live(),
            "server_ready": await client.is_server_ready(),
            "model_ready": await client.is_model_ready(model),
            "unknown_model_ready": await _ready_or_false(client.is_model_ready("no-such-model")),
            "predictions": response.outputs[0].as_numpy().tolist(),
        }
    finally:
        await client.close()


async def _ready_or_false(call) -> bool:
    """The SDK raises for an unknown model on some clients (a 404 / NOT_FOUND) instead of answering False."""
    try:
        return bool(await call)
    except Exception:  # noqa: BLE001 - any refusal means "not ready" to the caller
        return False


async def main() -> None:
    request = json.load(sys.stdin)
    rows = np.asarray(request["rows"], dtype=np.float32)
    answers = {
        "rest_v1": await rest_v1(request["base_url"], request["model"], rows),
        "rest_v2": await rest_v2(request["base_url"], request["model"], rows),
        "grpc": await grpc(request["grpc"], request["model"], rows),
    }
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
