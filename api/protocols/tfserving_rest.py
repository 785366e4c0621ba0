"""TensorFlow Serving's REST API, served by the same queue and micro-batching worker as /predict.

POST /v1/models/<name>[/versions/<v>|/labels/<l>]:predict   row format ({"instances"} → {"predictions"}) and
                                                            columnar format ({"inputs"} → {"outputs"}), any signature
POST /v1/models/<name>[/versions/<v>|/labels/<l>]:classify  {"examples": [...]} → {"results": [[[label, score]...]...]}
POST /v1/models/<name>[/versions/<v>|/labels/<l>]:regress   {"examples": [...]} → {"results": [value, ...]}
GET  /v1/models/<name>[/versions/<v>]                       every version's state and error (GetModelStatus)
GET  /v1/models/<name>[/versions/<v>|/labels/<l>]/metadata  every SignatureDef, in TF Serving's JSON
Without a version or label, a job runs on the newest version available when a worker claims it.
Calls are synchronous for the caller. Errors on these routes are {"error": "..."} (api/error_handler.py picks the
shape by blueprint), with TF Serving's status codes and, for the mistakes it names, its messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, request
from werkzeug.routing import BaseConverter

from api.jobs.submit import infer
from api.model_info import Served
from api.protocols.tf_example import json_type, serialize_examples
from api.protocols.tfserving_methods import (
    NOT_LOADED,
    Method,
    choose,
    classify_results,
    regress_results,
    resolve,
    version_statuses,
)
from api.responses import json_response
from api.services import services
from api.validation import columns_to_arrays, may_hold_booleans, rows_to_arrays
from shared.errors import InvalidInput
from shared.model_registry import VersionState
from shared.signature import ModelSignature

bp = Blueprint("tfserving", __name__)


class ModelName(BaseConverter):
    """A model name or version in a URL: no '/' and no ':' (as TF Serving's own URL pattern), so that
    GET /v1/models/<name> does not also match /v1/models/<name>:predict with the name "<name>:predict"."""

    regex = "[^/:]+"


_TF_TYPE_NAMES = {"float32": "float", "float64": "double", "float16": "half"}


def served(name: str, version: str | None, label: str | None = None) -> Served:
    """The model version the route names (TF Serving's NOT_FOUND words when it is not served)."""
    return resolve(services().model_info, name, version, label)


@bp.post("/v1/models/<model:name>:predict")
@bp.post("/v1/models/<model:name>/versions/<model:version>:predict")
@bp.post("/v1/models/<model:name>/labels/<model:label>:predict")
def predict(name: str, version: str | None = None, label: str | None = None) -> Response:
    """Row or columnar predict through the chosen signature; waits for the queued job (up to PROTOCOL_TIMEOUT_S)."""
    raw = request.get_data(cache=False)
    body = _parse(raw)
    target = served(name, version, label)
    key, signature = choose(target.signature, _signature_name(body), Method.PREDICT)
    row_format = _check_predict_body(body)
    max_rows = services().settings.max_rows_per_request
    values = body["instances"] if row_format else body["inputs"]
    values, lifted = _lift_scalars(values, signature)
    if row_format:
        arrays = _instances_to_arrays(values, signature, max_rows, may_hold_booleans(raw))
    else:
        arrays = columns_to_arrays(values, signature, max_rows)
    outputs = infer(arrays, key, target).by_name(signature)
    if lifted:  # scalars in, scalars out (TF Serving feeds them as they are; the graph keeps the shape)
        outputs = {k: [v[0] if isinstance(v, list) and len(v) == 1 else v for v in rows] for k, rows in outputs.items()}
    if not row_format:
        return json_response({"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs})
    if len(outputs) == 1:
        return json_response({"predictions": next(iter(outputs.values()))})
    names = list(outputs)
    return json_response({"predictions": [{n: outputs[n][i] for n in names} for i in range(len(outputs[names[0]]))]})


@bp.post("/v1/models/<model:name>:classify")
@bp.post("/v1/models/<model:name>/versions/<model:version>:classify")
@bp.post("/v1/models/<model:name>/labels/<model:label>:classify")
def classify(name: str, version: str | None = None, label: str | None = None) -> Response:
    """tf.Example rows through a classify signature: (label, score) pairs per example."""
    target = served(name, version, label)
    key, signature, arrays = _examples_request(target, Method.CLASSIFY)
    results = classify_results(infer(arrays, key, target).by_name(signature))
    return json_response({"results": [[list(pair) for pair in pairs] for pairs in results]})


@bp.post("/v1/models/<model:name>:regress")
@bp.post("/v1/models/<model:name>/versions/<model:version>:regress")
@bp.post("/v1/models/<model:name>/labels/<model:label>:regress")
def regress(name: str, version: str | None = None, label: str | None = None) -> Response:
    """tf.Example rows through a regress signature: one value per example."""
    target = served(name, version, label)
    key, signature, arrays = _examples_request(target, Method.REGRESS)
    return json_response({"results": regress_results(infer(arrays, key, target).by_name(signature))})


def _examples_request(target: Served, method: Method) -> tuple[str, ModelSignature, dict[str, np.ndarray]]:
    """Parse a classify/regress body ({"signature_name", "context", "examples"}) into the job's input."""
    body = _parse(request.get_data(cache=False))
    key, signature = choose(target.signature, _signature_name(body), method)
    context = body.get("context")
    if context is not None and not isinstance(context, dict):
        raise InvalidInput(f"Example must be JSON object but got JSON {json_type(context)}")
    examples = body.get("examples")
    if "examples" not in body:
        raise InvalidInput(
            f"JSON Value: {_compact(body)} When method is classify, key 'examples' is expected and was not found"
        )
    if not isinstance(examples, list):
        raise InvalidInput(f"JSON Value: {_compact(body)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise InvalidInput(f"JSON Value: {_compact(body)} 'examples' value is an empty array")
    max_rows = services().settings.max_rows_per_request
    if len(examples) > max_rows:
        raise InvalidInput(
            f"{len(examples)} examples is more than this server takes in one request (MAX_ROWS_PER_REQUEST={max_rows})"
        )
    serialized = np.array(serialize_examples(examples, context), dtype=object)
    return key, signature, {signature.inputs[0].name: serialized}


def _parse(raw: bytes) -> dict[str, Any]:
    """The request object, with TF Serving's messages for an empty, malformed or non-object body."""
    if not raw.strip():
        raise InvalidInput("JSON Parse error: The document is empty")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # rapidjson's words (TF Serving's parser) for the usual mistake: something that is no JSON value.
        what = "Invalid value." if exc.msg.startswith(("unexpected character", "expected value")) else exc.msg
        raise InvalidInput(f"JSON Parse error: {what} at offset: {exc.pos}") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"JSON Value: {_compact(body)} Is not object")
    return body


def _signature_name(body: dict[str, Any]) -> str:
    name = body.get("signature_name", "")
    if not isinstance(name, str):
        raise InvalidInput(
            f"JSON Value: {_compact(body)} not formatted correctly. 'signature_name' key must be a string value."
        )
    return name


def _check_predict_body(body: dict[str, Any]) -> bool:
    """Check the predict object's keys; True for the row format, False for the columnar one."""
    if "instances" in body and "inputs" in body:
        raise InvalidInput(
            f"JSON Value: {_compact(body)} Not formatted correctly expecting only one of "
            "'inputs' or 'instances' keys to exist "
        )
    if "instances" in body:
        if not isinstance(body["instances"], list):
            raise InvalidInput(f"JSON Value: {_compact(body)} Expecting 'instances' to be an list/array")
        if not body["instances"]:
            raise InvalidInput(f"JSON Value: {_compact(body)} No values in 'instances' array")
        return True
    if "inputs" in body:
        return False
    raise InvalidInput("Missing 'inputs' or 'instances' key")


def _lift_scalars(values: Any, signature: ModelSignature) -> tuple[Any, bool]:
    """TF Serving takes one number per instance for a model whose rows have shape [1]: make each a row."""
    if len(signature.inputs) != 1 or signature.inputs[0].shape != (1,) or not isinstance(values, list):
        return values, False
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return values, False
    return [[v] for v in values], True


def _instances_to_arrays(
    instances: list, signature: ModelSignature, max_rows: int, maybe_booleans: bool
) -> dict[str, np.ndarray]:
    """`rows_to_arrays`, with TF Serving's message for a value that is not a number. The conversion accepts
    numbers of the input's kind only, so the walk for that message runs only when it refused the rows (a
    second pass over a 64-row body's values, 8% of the API's CPU on this route, when it ran first)."""
    try:
        return rows_to_arrays(instances, signature, max_rows, maybe_booleans)
    except InvalidInput:
        _check_instance_types(instances, signature)  # raises TF Serving's message, if that is what was wrong
        raise


def _check_instance_types(instances: list, signature: ModelSignature) -> None:
    """TF Serving's message for the first value that is not a number (for a numeric single-input model)."""
    if any(isinstance(row, dict) for row in instances):
        if len(signature.inputs) > 1 and not all(isinstance(row, dict) for row in instances):
            raise InvalidInput(
                "Expecting object but got list at item "
                f"{next(i for i, r in enumerate(instances) if not isinstance(r, dict))} of input list"
            )
        return
    if len(signature.inputs) > 1:
        raise InvalidInput(
            "instances is a plain list, but expecting list of objects as multiple input tensors "
            "required as per tensorinfo_map"
        )
    dtype = signature.inputs[0].dtype
    if _only_numbers(instances, len(signature.inputs[0].shape), dtype):
        return
    for i, row in enumerate(instances):
        bad = _non_numbers(row, dtype)
        if bad:
            type_name = _TF_TYPE_NAMES.get(dtype, dtype)
            raise InvalidInput(
                f"Failed to process element: {i} of 'instances' list. Error: INVALID_ARGUMENT: "
                f"JSON Value: {_compact(bad[0])} Type: {json_type(bad[0])} is not of expected type: {type_name}"
            )


def _only_numbers(instances: list, row_depth: int, dtype: str) -> bool:
    """Whether every value, `row_depth` lists deep in each instance, is what `dtype` takes: one C-speed pass
    over the values (the common case), so that only a body with a bad value is walked in Python for its
    message. False when unsure (a ragged or deeper body): then the walk decides."""
    flat: Iterable[Any] = instances
    try:
        for _ in range(row_depth):
            flat = chain.from_iterable(flat)
        types = set(map(type, flat))
    except TypeError:  # a number where a list was expected
        return False
    return types == {bool} if dtype == "bool" else types <= {int, float}


def _non_numbers(value: Any, dtype: str) -> list[Any]:
    """The values (at most one) in a nested row that TF Serving would refuse for `dtype`."""
    if isinstance(value, list):
        return next((bad for v in value if (bad := _non_numbers(v, dtype))), [])
    is_bool = isinstance(value, bool)
    ok = is_bool if dtype == "bool" else isinstance(value, (int, float)) and not is_bool
    return [] if ok else [value]


def _compact(value: Any) -> str:
    return orjson.dumps(value).decode()[:256]


@bp.get("/v1/models/<model:name>")
@bp.get("/v1/models/<model:name>/versions/<model:version>")
def status(name: str, version: str | None = None) -> Response:
    """TF Serving's GetModelStatus reply: every version (newest first) with its state, and the error of a
    version that failed to load (state END, error_code UNKNOWN). With KServe v1's model-readiness fields
    beside it (`name`, `ready`: a version AVAILABLE), which the kserve SDK's `is_model_ready` reads."""
    listed = version_statuses(services().model_info, name, version)
    return json_response(
        {
            "model_version_status": [
                {
                    "version": v.version,
                    "state": v.state.value,
                    "status": {"error_code": _error_code(v.error), "error_message": v.error},
                }
                for v in listed
            ],
            "name": name,
            "ready": any(v.state is VersionState.AVAILABLE for v in listed),
        }
    )


def _error_code(error: str) -> str:
    """TF Serving's status code name: OK, UNAVAILABLE while no worker runs the model, UNKNOWN for a failed load."""
    return "OK" if not error else "UNAVAILABLE" if error == NOT_LOADED else "UNKNOWN"


@bp.get("/v1/models/<model:name>/metadata")
@bp.get("/v1/models/<model:name>/versions/<model:version>/metadata")
@bp.get("/v1/models/<model:name>/labels/<model:label>/metadata")
def metadata(name: str, version: str | None = None, label: str | None = None) -> Response:
    """TF Serving's GetModelMetadata reply: every SignatureDef of the model version."""
    signature = served(name, version, label).signature
    defs = {key: d.tf_json for key, d in signature.signature_defs().items()}
    return json_response(
        {
            "model_spec": {"name": signature.name, "signature_name": "", "version": signature.version},
            "metadata": {"signature_def": {"signature_def": defs}},
        }
    )
