"""The component schemas of the OpenAPI document: fixed ones (errors, documents) and the ones built from the
signature the workers advertise (rows, tensors, predictions), so that a client or fuzzer generated from the
document sends rows of exactly the model's shape and dtype.

With no model advertised yet, the signature-derived schemas fall back to generic ones (rows of any numbers).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson

from api.protocols.kserve_codec import datatype as v2_datatype
from shared.batches import BatchStatus
from shared.config import MAX_START_DEADLINE_S
from shared.schema import ApiErrorCode, ErrorCode, JobStatus
from shared.signature import DEFAULT_SIGNATURE, ModelSignature, TensorSpec
from shared.webhooks import CALLBACK_URL_PATTERN, MAX_URL_LENGTH

V2_DATATYPES = [
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
]
NEVER: dict[str, Any] = {"not": {}}  # a property that must be absent
ANY_NUMBER = {"type": "number"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def value_schema(dtype: str, output: bool = False) -> dict[str, Any]:
    """One JSON value of `dtype`: true/false for bool, integers in range, finite numbers in range.

    Outputs may hold null: a NaN or infinite model output is written as null.
    """
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return {}
    if kind == "b":
        schema: dict[str, Any] = {"type": "boolean"}
    elif kind in "iu":
        info = np.iinfo(dtype)
        schema = {"type": "integer", "minimum": int(info.min), "maximum": int(info.max)}
    elif kind == "f":
        biggest = float(np.finfo(dtype).max)
        schema = {"type": "number"} if output else {"type": "number", "minimum": -biggest, "maximum": biggest}
    else:
        return {}
    return {**schema, "nullable": True} if output and kind == "f" else schema


def tensor_schema(spec: TensorSpec, output: bool = False) -> dict[str, Any]:
    """One row of a tensor: nested arrays with exactly the spec's lengths (any length where it has None)."""
    schema = value_schema(spec.dtype, output)
    for dim in reversed(spec.shape):
        schema = {"type": "array", "items": schema, **({"minItems": dim, "maxItems": dim} if dim is not None else {})}
    return {**schema, "description": f"{spec.name}: {spec.describe()}"} if spec.shape else schema


def _rows(item: dict[str, Any], max_rows: int) -> dict[str, Any]:
    return {"type": "array", "items": item, "minItems": 1, "maxItems": max_rows}


def _keyed(specs: tuple[TensorSpec, ...], schema_of: Any) -> dict[str, Any]:
    """An object with exactly these tensors, keyed by name."""
    return {
        "type": "object",
        "properties": {t.name: schema_of(t) for t in specs},
        "required": [t.name for t in specs],
        "additionalProperties": False,
    }


def rows_schema(signature: ModelSignature | None, max_rows: int) -> dict[str, Any]:
    """1 to max_rows rows: arrays for a one-input model (or objects keyed by its name), objects for several."""
    if signature is None:
        return {**_rows({"description": "A row of the model's input (its shape and dtype: GET /v1/models)"}, max_rows)}
    inputs = signature.inputs
    keyed = _rows(_keyed(inputs, tensor_schema), max_rows)
    if len(inputs) > 1:
        return {**keyed, "description": "Rows as objects keyed by input name"}
    return {"anyOf": [_rows(tensor_schema(inputs[0]), max_rows), keyed]}


def columns_schema(signature: ModelSignature | None, max_rows: int) -> dict[str, Any]:
    """TF Serving's columnar `inputs`: a batch-major array per input (the bare array for one input)."""
    if signature is None:
        return {"description": "One batch-major array, or an object of them keyed by input name"}
    keyed = _keyed(signature.inputs, lambda t: _rows(tensor_schema(t), max_rows))
    if len(signature.inputs) > 1:
        return {**keyed, "description": "Every input with the same number of rows"}
    return {"anyOf": [_rows(tensor_schema(signature.inputs[0]), max_rows), keyed]}


def prediction_schema(signature: ModelSignature | None) -> dict[str, Any]:
    """One row of predictions: the output's value (one output) or an object keyed by output name."""
    if signature is None:
        return {}
    if len(signature.outputs) == 1:
        return tensor_schema(signature.outputs[0], output=True)
    return _keyed(signature.outputs, lambda t: tensor_schema(t, output=True))


def v2_tensor_schema(spec: TensorSpec) -> dict[str, Any]:
    """An input tensor of an infer request: its name, any served datatype, batch size first in its shape."""
    rank = len(spec.shape) + 1
    return {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string", "enum": [spec.name]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": rank, "maxItems": rank},
            "datatype": {"type": "string", "enum": V2_DATATYPES},
            "data": {"type": "array", "description": "The values in row-major order, flat or nested"},
            "parameters": ref("V2TensorParameters"),
        },
    }


def v2_request_schema(signature: ModelSignature | None) -> dict[str, Any]:
    inputs: dict[str, Any] = {"type": "array", "items": ref("V2Tensor"), "minItems": 1}
    outputs: dict[str, Any] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}, "parameters": ref("V2OutputParameters")},
    }
    if signature is not None:
        count = len(signature.inputs)
        tensors = [v2_tensor_schema(t) for t in signature.inputs]
        inputs = {
            "type": "array",
            "items": tensors[0] if count == 1 else {"anyOf": tensors},
            "minItems": count,
            "maxItems": count,
            "description": "Each input once",
        }
        outputs["properties"]["name"] = {"type": "string", "enum": [t.name for t in signature.outputs]}
    return {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string"},
            "parameters": ref("V2RequestParameters"),
            "inputs": inputs,
            "outputs": {"type": "array", "items": outputs},
        },
    }


def example_value(spec: TensorSpec) -> Any:
    """A row of zeros (false for bool) of the spec's shape, free dimensions of size 1."""
    value: Any = False if spec.dtype == "bool" else 0
    for dim in reversed(spec.shape):
        value = [value] * (dim or 1)
    return value


def examples(signature: ModelSignature | None) -> dict[str, Any]:
    """Valid request bodies for the served model, one row each, keyed by what they are for ({} without one)."""
    if signature is None:
        return {}
    inputs = signature.inputs
    row = example_value(inputs[0]) if len(inputs) == 1 else {t.name: example_value(t) for t in inputs}
    found: dict[str, Any] = {
        "predict": {"instances": [row]},
        "tf": {"instances": [row]},
        "ndjson": orjson.dumps(row).decode() + "\n",
        "v2": {
            "inputs": [
                {
                    "name": t.name,
                    "datatype": v2_datatype(t.dtype),
                    "shape": [1, *(d or 1 for d in t.shape)],
                    "data": np.ravel(example_value(t)).tolist(),
                }
                for t in inputs
            ]
        },
    }
    dims = [d for d in inputs[0].shape if d is not None]
    if len(inputs) == 1 and len(dims) == len(inputs[0].shape):
        found["csv"] = ",".join("0" for _ in range(math.prod(dims))) + "\n"
    return found


def tf_predict_variants(signature: ModelSignature | None, max_rows: int) -> list[dict[str, Any]]:
    """TF Serving's predict bodies: row or columnar format, for each signature (`signature_name` picks one;
    absent or "" is serving_default), with that signature's rows."""
    names = list(signature.signature_defs()) if signature is not None else [DEFAULT_SIGNATURE]
    variants = []
    for name in names:
        seen = signature.select(name) if signature is not None else None
        default = name == DEFAULT_SIGNATURE
        which = {"type": "string", "enum": [name, ""] if default else [name]}
        required = [] if default else ["signature_name"]
        variants += [
            {
                "type": "object",
                "required": ["instances", *required],
                "description": f"Row format ({name})",
                "properties": {"signature_name": which, "instances": rows_schema(seen, max_rows), "inputs": NEVER},
            },
            {
                "type": "object",
                "required": ["inputs", *required],
                "description": f"Columnar format ({name})",
                "properties": {"signature_name": which, "inputs": columns_schema(seen, max_rows), "instances": NEVER},
            },
        ]
    return variants


def callback_url_schema(nullable: bool = False) -> dict[str, Any]:
    """A callback URL as shared/webhooks.py accepts it; empty (or null in a JSON body) for none."""
    schema = {
        "type": "string",
        "pattern": f"^$|{CALLBACK_URL_PATTERN}",
        "maxLength": MAX_URL_LENGTH,
        "description": "POSTed the final document when it ends (empty: none)",
    }
    return {**schema, "nullable": True} if nullable else schema


def signature_schemas(signature: ModelSignature | None, max_rows: int) -> dict[str, Any]:
    """The schemas that depend on the served model."""
    rows = rows_schema(signature, max_rows)
    return {
        "Rows": rows,
        "Prediction": prediction_schema(signature),
        "PredictRequest": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["instances"],
                    "properties": {
                        "instances": ref("Rows"),
                        "timeout": {
                            "type": "number",
                            "minimum": 0,
                            "exclusiveMinimum": True,
                            "maximum": MAX_START_DEADLINE_S,
                            "description": "Seconds the job may wait to start (its deadline)",
                        },
                        "callback_url": callback_url_schema(nullable=True),
                    },
                },
                ref("Rows"),
            ]
        },
        "TFPredictRequest": {"oneOf": tf_predict_variants(signature, max_rows)},
        "V2InferRequest": v2_request_schema(signature),
    }


_ERROR = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "enum": [code.value for code in ApiErrorCode]},
        "message": {"type": "string"},
        "field": {"type": "string"},
        "expected": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}
_NULLABLE_STRING = {"type": "string", "nullable": True}

FIXED_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": _ERROR}},
    "ProtocolError": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    "CallbackURL": callback_url_schema(),
    "Index": {
        "type": "object",
        "required": ["service", "version", "status", "models", "links"],
        "properties": {
            "service": {"type": "string"},
            "version": {"type": "string"},
            "status": {"type": "string", "enum": ["alive"]},
            "models": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "version"],
                    "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
                },
            },
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Pending": {
        "type": "object",
        "required": ["id", "status", "result_url"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": [JobStatus.QUEUED.value, JobStatus.STARTED.value]},
            "result_url": {"type": "string"},
        },
    },
    "JobDocument": {
        "type": "object",
        "required": ["id", "status"],
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in JobStatus if s.is_terminal]},
            "predictions": {"type": "array", "items": ref("Prediction")},
            "model": {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"}}},
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "enum": [code.value for code in ErrorCode]},
                    "message": {"type": "string"},
                },
            },
            "request_id": {"type": "string"},
        },
    },
    "BatchDocument": {
        "type": "object",
        "required": ["id", "status", "total_rows", "done_rows", "failed_rows"],
        "properties": {
            "id": {"type": "string"},
            "object": {"type": "string", "enum": ["batch"]},
            "status": {"type": "string", "enum": [s.value for s in BatchStatus]},
            "total_rows": {"type": "integer"},
            "done_rows": {"type": "integer"},
            "failed_rows": {"type": "integer"},
            "created_at": _NULLABLE_STRING,
            "started_at": _NULLABLE_STRING,
            "finished_at": _NULLABLE_STRING,
            "expires_at": _NULLABLE_STRING,
            "output_url": _NULLABLE_STRING,
            "errors_url": _NULLABLE_STRING,
            "metadata": {"type": "object", "nullable": True},
        },
    },
    "TFPredictResponse": {
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "items": ref("Prediction"), "description": "Row format answer"},
            "outputs": {
                "description": "Columnar format answer: one output's rows, or an object of them by output name"
            },
            "model_spec": {
                "type": "object",
                "description": "name, version, signature_name (not in TF Serving's REST reply)",
            },
        },
    },
    "TFExamplesRequest": {
        "type": "object",
        "required": ["examples"],
        "properties": {
            "signature_name": {"type": "string"},
            "context": {"type": "object"},
            "examples": {
                "type": "array",
                "items": {"type": "object"},
                "description": "tf.Example rows: feature name → value or list of values",
            },
        },
    },
    "V2Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1},
            "datatype": {"type": "string", "enum": V2_DATATYPES},
            "data": {"type": "array"},
            "parameters": ref("V2TensorParameters"),
        },
    },
    "V2TensorParameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
    "V2OutputParameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"}}},
    "V2RequestParameters": {"type": "object", "properties": {"binary_data_output": {"type": "boolean"}}},
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype"],
                    "properties": {
                        "name": {"type": "string"},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "datatype": {"type": "string"},
                        "data": {"type": "array", "description": "null for NaN or infinite values"},
                        "parameters": {"type": "object"},
                    },
                },
            },
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": ref("V2TensorMetadata")},
            "outputs": {"type": "array", "items": ref("V2TensorMetadata")},
        },
    },
    "V2TensorMetadata": {
        "type": "object",
        "required": ["name", "datatype", "shape"],
        "properties": {
            "name": {"type": "string"},
            "datatype": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}, "description": "-1: any size"},
        },
    },
}
