"""The OpenAPI 3 document of the API, written by hand so that a test can hold it against the real routes
(tests/unit/test_openapi.py: every Flask route described, every described route served)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _op(
    summary: str,
    responses: dict[str, Any],
    tag: str,
    params: tuple[str, ...] = (),
    body: dict[str, Any] | None = None,
    query: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    parameters = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    op["parameters"] = parameters + (query or [])
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    return op


ERR = {
    str(c): _json(_ref("Error"), d)
    for c, d in [
        (400, "Bad input: the error names the field and the expected form"),
        (404, "Unknown or expired"),
        (503, "No live worker has the model loaded, or Redis is unreachable"),
    ]
}
PERR = {
    str(c): _json(_ref("ProtocolError"), d)
    for c, d in [
        (400, "Bad input"),
        (404, "No such model or version"),
        (500, "The job failed"),
        (503, "No model loaded yet"),
        (504, "The job did not finish within PROTOCOL_TIMEOUT_S"),
    ]
}
WAIT = [
    {
        "name": "wait",
        "in": "query",
        "required": False,
        "schema": {"type": "number", "minimum": 0, "maximum": 30},
        "description": "Seconds to hold the request until the result is ready (0-30).",
    }
]
OBJ = {"type": "object", "additionalProperties": True}
IDEMPOTENCY = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
        "description": "1-255 printable ASCII characters (e.g. a UUID). The same key from the same API key "
        "within RESULT_TTL answers with the first request's job or batch, in its current "
        "state (header Idempotent-Replayed: true), and never enqueues twice.",
    }
]
IDEMPOTENCY_409 = _json(
    _ref("Error"),
    "Idempotency-Key already used for a different request (code conflict), or "
    "its first request is still running (code request_in_progress, with "
    "Retry-After)",
)


def _tf_paths() -> dict[str, Any]:
    tag, paths = "TensorFlow Serving REST", {}
    for prefix, params in (
        ("/v1/models/{name}", ("name",)),
        ("/v1/models/{name}/versions/{version}", ("name", "version")),
    ):
        paths[prefix + ":predict"] = {
            "post": _op(
                "Predict, row format (instances → predictions) or columnar (inputs → outputs); waits for the job",
                {"200": _json(_ref("TFPredictResponse"), "Predictions"), **PERR},
                tag,
                params,
                _ref("TFPredictRequest"),
            )
        }
        for method, what in (("classify", "[label, score] pairs"), ("regress", "one value")):
            paths[prefix + ":" + method] = {
                "post": _op(
                    f'{method.capitalize()}: tf.Example rows ({{"signature_name", "context", "examples": [...]}}) '
                    f'through a {method} signature → {{"results"}}, {what} per example; waits for the job',
                    {"200": _json(OBJ, "results"), **PERR},
                    tag,
                    params,
                    OBJ,
                )
            }
        paths[prefix] = {
            "get": _op(
                "Model version status (GetModelStatus)",
                {"200": _json(OBJ, "model_version_status"), **PERR},
                tag,
                params,
            )
        }
        paths[prefix + "/metadata"] = {
            "get": _op(
                "Model metadata: every SignatureDef of the model",
                {"200": _json(OBJ, "model_spec and metadata.signature_def"), **PERR},
                tag,
                params,
            )
        }
    return paths


def _v2_paths() -> dict[str, Any]:
    tag = "KServe v2 / Open Inference Protocol"
    paths: dict[str, Any] = {
        "/v2/health/live": {"get": _op("Server liveness", {"200": _json(OBJ, '{"live": true}')}, tag)},
        "/v2/health/ready": {
            "get": _op(
                "Server readiness: a live worker has the model", {"200": _json(OBJ, '{"ready": true}'), **PERR}, tag
            )
        },
        "/v2": {"get": _op("Server metadata: name, version, extensions", {"200": _json(OBJ, "Server metadata")}, tag)},
    }
    for prefix, params in (
        ("/v2/models/{name}", ("name",)),
        ("/v2/models/{name}/versions/{version}", ("name", "version")),
    ):
        paths[prefix] = {
            "get": _op(
                "Model metadata: inputs and outputs with datatypes and shapes (-1: any size)",
                {"200": _json(_ref("V2ModelMetadata"), "Model metadata"), **PERR},
                tag,
                params,
            )
        }
        paths[prefix + "/ready"] = {
            "get": _op("Model readiness", {"200": _json(OBJ, '{"name", "ready": true}'), **PERR}, tag, params)
        }
        paths[prefix + "/infer"] = {
            "post": _op(
                "Inference with typed tensors (JSON, or the binary tensor data extension with the "
                "Inference-Header-Content-Length header); waits for the job",
                {"200": _json(_ref("V2InferResponse"), "Outputs (binary outputs follow the JSON header)"), **PERR},
                tag,
                params,
                _ref("V2InferRequest"),
            )
        }
    return paths


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _batch_paths() -> dict[str, Any]:
    tag = "Bulk batches"
    store_down = {
        "503": _json(
            _ref("Error"),
            "No model loaded yet, Redis unreachable, or the object store "
            "(STORAGE_URL) unreachable: code storage_unavailable, with Retry-After",
        )
    }
    upload = {
        "required": True,
        "content": {
            "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}, "example": "[0, 1, ...]\n"},
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "callback_url": {"type": "string"},
                        "metadata": {"type": "string"},
                        "on_error": {"type": "string", "enum": ["reject", "skip"]},
                    },
                }
            },
        },
    }
    options = [
        _query("callback_url", {"type": "string"}, "POSTed the batch's status document when it ends"),
        _query("metadata", {"type": "string"}, "A small JSON object stored and echoed on the batch"),
        _query(
            "on_error",
            {"type": "string", "enum": ["reject", "skip"]},
            "reject (default): a malformed row rejects the upload; skip: it goes to the error file",
        ),
    ]
    create = _op(
        "Upload a file of rows (NDJSON, CSV, .npy, or multipart); streamed and validated, then queued",
        {
            "202": _json(_ref("BatchDocument"), "Stored and queued"),
            **ERR,
            "409": IDEMPOTENCY_409,
            "413": _json(_ref("Error"), "Larger than MAX_BATCH_BYTES"),
            "415": _json(_ref("Error"), "Not a supported file type"),
            **store_down,
        },
        tag,
        (),
        None,
        options + IDEMPOTENCY,
    )
    create["requestBody"] = upload
    binary = {
        "application/x-ndjson": {"schema": {"type": "string"}},
        "application/x-npy": {"schema": {"type": "string"}},
    }
    return {
        "/batches": {"post": create},
        "/batches/{batch_id}": {
            "get": _op(
                "A batch's status document", {"200": _json(_ref("BatchDocument"), "Status"), **ERR}, tag, ("batch_id",)
            ),
            "delete": _op(
                "Cancel a batch: chunks not yet started never run; finished ones stay downloadable",
                {"200": _json(_ref("BatchDocument"), "Cancelled"), "409": _json(_ref("Error"), "Already ended"), **ERR},
                tag,
                ("batch_id",),
            ),
        },
        "/batches/{batch_id}/results": {
            "get": _op(
                "Predictions in input order: NDJSON {row, prediction} lines, or .npy with Accept: application/x-npy",
                {
                    "200": {"description": "Streamed results", "content": binary},
                    "409": _json(_ref("Error"), "Not completed yet (ask ?partial=true for the finished prefix)"),
                    **ERR,
                    **store_down,
                },
                tag,
                ("batch_id",),
                None,
                [_query("partial", {"type": "boolean"}, "Stream the finished prefix while running")],
            )
        },
        "/batches/{batch_id}/errors": {
            "get": _op(
                "NDJSON of {row, error} for rows that were rejected or failed",
                {
                    "200": {
                        "description": "Streamed errors",
                        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
                    },
                    **ERR,
                    **store_down,
                },
                tag,
                ("batch_id",),
            )
        },
    }


def _service_paths() -> dict[str, Any]:
    jobs, ops = "Jobs", "Operations"
    return {
        "/predict": {
            "post": _op(
                "Validate rows and enqueue one job (202), or wait for its result with ?wait",
                {
                    "200": _json(_ref("JobDocument"), "Finished within ?wait"),
                    "202": _json(OBJ, "Queued: id, status, result_url"),
                    **ERR,
                    "409": IDEMPOTENCY_409,
                },
                jobs,
                (),
                {"oneOf": [_ref("Instances"), {"type": "array"}]},
                WAIT + IDEMPOTENCY,
            )
        },
        "/result/{job_id}": {
            "get": _op(
                "A job's status or result; ?wait long-polls",
                {
                    "200": _json(_ref("JobDocument"), "Finished, failed, canceled or expired"),
                    "202": _json(OBJ, "Still queued or started"),
                    **ERR,
                },
                jobs,
                ("job_id",),
                None,
                WAIT,
            )
        },
        "/jobs/{job_id}": {
            "delete": _op(
                "Cancel a job that has not started",
                {
                    "200": _json(_ref("JobDocument"), "Canceled"),
                    "409": _json(_ref("Error"), "Already started or done"),
                    **ERR,
                },
                jobs,
                ("job_id",),
            )
        },
        "/healthz": {"get": _op("The API process is alive", {"200": _json(OBJ, '{"status": "ok"}')}, ops)},
        "/readyz": {
            "get": _op(
                "Redis answers and a live worker has the model (scope=api: Redis answers)",
                {"200": _json(OBJ, "Ready"), **ERR},
                ops,
                (),
                None,
                [
                    _query(
                        "scope",
                        {"type": "string", "enum": ["service", "api"]},
                        "api: ask only whether this API process can take requests (not workers)",
                    )
                ],
            )
        },
        "/v1/models": {
            "get": _op(
                "The served model: name, version, inputs, outputs, batching, live workers",
                {"200": _json(OBJ, '{"models": [...]}'), **ERR},
                ops,
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (text exposition format)",
                {"200": {"description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
                ops,
            )
        },
        "/openapi.json": {"get": _op("This document", {"200": _json(OBJ, "OpenAPI 3 document")}, ops)},
        "/docs": {
            "get": _op(
                "Swagger UI for this document (works offline)",
                {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}},
                ops,
            )
        },
        "/docs/{asset}": {
            "get": _op(
                "A Swagger UI asset served from the swagger-ui-bundle package",
                {"200": {"description": "The file"}, "404": {"description": "Not an asset"}},
                ops,
                ("asset",),
            )
        },
    }


SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                    "expected": {"type": "string"},
                },
                "required": ["code", "message"],
            }
        },
    },
    "ProtocolError": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    "Instances": {
        "type": "object",
        "properties": {
            "instances": {
                "type": "array",
                "description": "Rows; for several inputs each row is an object keyed by input name",
            }
        },
        "required": ["instances"],
    },
    "JobDocument": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {"type": "string", "enum": ["finished", "failed", "canceled", "expired"]},
            "predictions": {"type": "array"},
            "model": {"type": "object"},
            "error": {"type": "object"},
            "request_id": {"type": "string"},
        },
    },
    "BatchDocument": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "status": {
                "type": "string",
                "enum": ["validating", "queued", "in_progress", "completed", "failed", "cancelled", "expired"],
            },
            "total_rows": {"type": "integer"},
            "done_rows": {"type": "integer"},
            "failed_rows": {"type": "integer"},
            "created_at": {"type": "string"},
            "started_at": {"type": "string"},
            "finished_at": {"type": "string"},
            "output_url": {"type": "string"},
            "errors_url": {"type": "string"},
            "metadata": {"type": "object"},
        },
    },
    "TFPredictRequest": {
        "type": "object",
        "properties": {
            "signature_name": {"type": "string", "default": "serving_default"},
            "instances": {"type": "array", "description": "Row format"},
            "inputs": {"description": "Columnar format: one batch-major array, or an object keyed by input name"},
        },
    },
    "TFPredictResponse": {
        "type": "object",
        "properties": {
            "predictions": {"type": "array", "description": "Row format answer"},
            "outputs": {"description": "Columnar format answer"},
            "model_spec": {
                "type": "object",
                "description": "name, version, signature_name (not in TF Serving's REST reply)",
            },
        },
    },
    "V2Tensor": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {
                "type": "string",
                "enum": [
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
                ],
            },
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
        "required": ["name", "shape", "datatype"],
    },
    "V2InferRequest": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "parameters": {"type": "object"},
            "inputs": {"type": "array", "items": _ref("V2Tensor")},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "parameters": {"type": "object"}},
                },
            },
        },
        "required": ["inputs"],
    },
    "V2InferResponse": {
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("V2Tensor")},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array"},
            "outputs": {"type": "array"},
        },
    },
}


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once per process)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Batched inference queue",
            "version": "0.1.0",
            "description": "Flask + Redis/RQ + a micro-batching TensorFlow worker. Every route, including "
            "the TensorFlow Serving and KServe v2 ones, rides the same queue and batching worker. "
            "Every response carries X-Request-ID (the client's, if acceptable, else a new one).",
        },
        "paths": {**_service_paths(), **_batch_paths(), **_tf_paths(), **_v2_paths()},
        "components": {"schemas": SCHEMAS},
    }
