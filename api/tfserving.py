"""TensorFlow Serving's REST API, served by the same queue and batching worker as /predict.

POST /v1/models/<name>[/versions/<v>]:predict  row format ({"instances"} → {"predictions"}) and columnar
                                               format ({"inputs"} → {"outputs"}); synchronous for the caller
GET  /v1/models/<name>[/versions/<v>]           version status
GET  /v1/models/<name>[/versions/<v>]/metadata  signature in TF Serving's JSON (SignatureDef) shape
Errors on these routes are {"error": "..."} (api/errors.py picks the shape by blueprint).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.routing import BaseConverter

from api.inference import infer
from api.responses import json_response
from api.validation import columns_to_arrays, loads_json, rows_to_arrays
from shared.errors import InvalidInput, NotFound
from shared.signature import ModelSignature, TensorSpec

bp = Blueprint("tfserving", __name__)


class ModelName(BaseConverter):
    """A model name or version in a URL: no '/' and no ':' (as TF Serving's own URL pattern), so that
    GET /v1/models/<name> does not also match /v1/models/<name>:predict with the name "<name>:predict"."""

    regex = "[^/:]+"

SIGNATURE_NAME = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
DT_NAMES = {
    "float16": "DT_HALF", "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "bfloat16": "DT_BFLOAT16",
    "int8": "DT_INT8", "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64",
    "uint8": "DT_UINT8", "uint16": "DT_UINT16", "uint32": "DT_UINT32", "uint64": "DT_UINT64",
    "bool": "DT_BOOL", "string": "DT_STRING",
}


def served(name: str, version: str | None) -> ModelSignature:
    """The served model's signature if `name` (and `version`, when given) is what the workers serve."""
    signature = current_app.extensions["inference"].model_info.signature()
    if name != signature.name or (version is not None and version != signature.version):
        wanted = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
        raise NotFound(f"Servable not found for request: {wanted}")
    return signature


@bp.post("/v1/models/<model:name>:predict")
@bp.post("/v1/models/<model:name>/versions/<model:version>:predict")
def predict(name: str, version: str | None = None) -> Response:
    """Row or columnar predict; waits for the queued job (up to PROTOCOL_TIMEOUT_S)."""
    signature = served(name, version)
    body = loads_json(request.get_data(cache=False))
    row_format = _check_body(body)
    max_rows = current_app.extensions["inference"].settings.max_rows_per_request
    if row_format:
        outcome = infer(rows_to_arrays(body["instances"], signature, max_rows))
        answer: dict[str, Any] = {"predictions": outcome.predictions}
    else:
        outcome = infer(columns_to_arrays(body["inputs"], signature, max_rows))
        outputs = outcome.by_name(signature)
        answer = {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
    # Not in TF Serving's REST reply (its gRPC reply has it): which model and version answered.
    answer["model_spec"] = {**outcome.model, "signature_name": SIGNATURE_NAME}
    return json_response(answer)


def _check_body(body: Any) -> bool:
    """Check the request object; True for the row format, False for the columnar one."""
    if not isinstance(body, dict) or ("instances" in body) == ("inputs" in body):
        raise InvalidInput("the request must be a JSON object with either 'instances' (row format) or "
                           "'inputs' (columnar format)", expected='{"instances": [...]} or {"inputs": ...}')
    signature_name = body.get("signature_name", SIGNATURE_NAME)
    if signature_name not in (SIGNATURE_NAME, ""):
        raise InvalidInput(f'Serving signature name: "{str(signature_name)[:64]}" not found in signature def',
                           expected=f'"{SIGNATURE_NAME}" (the one signature this server serves)')
    if "instances" in body and not isinstance(body["instances"], list):
        raise InvalidInput("'instances' must be a list of rows", field="instances", expected="a JSON array of rows")
    return "instances" in body


@bp.get("/v1/models/<model:name>")
@bp.get("/v1/models/<model:name>/versions/<model:version>")
def status(name: str, version: str | None = None) -> Response:
    """TF Serving's GetModelStatus reply: AVAILABLE while a live worker serves the model."""
    signature = served(name, version)
    live = bool(current_app.extensions["inference"].model_info.live_workers())
    error = {"error_code": "OK", "error_message": ""} if live else {
        "error_code": "UNAVAILABLE", "error_message": "no live worker has the model loaded"}
    return json_response({"model_version_status": [
        {"version": signature.version, "state": "AVAILABLE" if live else "END", "status": error}
    ]})


@bp.get("/v1/models/<model:name>/metadata")
@bp.get("/v1/models/<model:name>/versions/<model:version>/metadata")
def metadata(name: str, version: str | None = None) -> Response:
    """TF Serving's GetModelMetadata reply: the signature_def map (one signature, serving_default)."""
    signature = served(name, version)
    return json_response({
        "model_spec": {"name": signature.name, "signature_name": "", "version": signature.version},
        "metadata": {"signature_def": {"signature_def": {SIGNATURE_NAME: signature_def(signature)}}},
    })


def signature_def(signature: ModelSignature) -> dict[str, Any]:
    """A SignatureDef as TF Serving renders it in JSON (int64 sizes as strings, -1 for any size)."""
    return {
        "inputs": {t.name: tensor_info(t) for t in signature.inputs},
        "outputs": {t.name: tensor_info(t) for t in signature.outputs},
        "method_name": PREDICT_METHOD,
        "defaults": {},
    }


def tensor_info(spec: TensorSpec) -> dict[str, Any]:
    dims = [-1, *(-1 if d is None else d for d in spec.shape)]
    return {
        "dtype": DT_NAMES.get(spec.dtype, "DT_INVALID"),
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
        "name": f"{spec.name}:0",
    }
