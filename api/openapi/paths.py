"""The OpenAPI 3 document of the API, written by hand so that tests can hold it against the real routes
(tests/unit/test_openapi.py) and a property-based tester against the running service (tests/e2e/test_openapi_fuzz.py).

Every operation lists every status it can answer, each with its body schema. Request schemas for rows come
from the signature the workers advertise (api/openapi/schemas.py), so the document is built per signature
(and per settings it depends on), once: `document(...)` is cached and returns the encoded JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson

from api.openapi.schemas import FIXED_SCHEMAS, examples, ref, signature_schemas
from api.request_line import MAX_TARGET_BYTES
from shared.config import MAX_START_DEADLINE_S
from shared.signature import CLASSIFY_METHOD, REGRESS_METHOD, ModelSignature
from shared.version import VERSION

JSON = "application/json"
NDJSON = "application/x-ndjson"
NPY = "application/x-npy"
ASSET_TYPES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}
TEXT = {
    400: "Bad input: the error names the field and the expected form",
    401: "API_KEYS is set and the key is missing or wrong",
    404: "Unknown, expired, or created with another API key",
    406: "The result cannot be given in the format asked for",
    409: "The job or batch is not in a state that allows this; or an Idempotency-Key reused for a different request "
    "(code conflict), or whose first request is still running (code request_in_progress, with Retry-After)",
    413: "The body is over the size limit",
    415: "Content-Type (or Content-Encoding) not supported",
    429: "The queue is full (MAX_QUEUE_DEPTH); retry after Retry-After",
    500: "The job failed (the message says why)",
    503: "No live worker has the model loaded, Redis is unreachable, or (bulk batches) the object store "
    "(STORAGE_URL) is unreachable (code storage_unavailable)",
    504: "The job did not finish within PROTOCOL_TIMEOUT_S",
}
# Any URL may be too long (api/request_line.py); gunicorn's own page comes first past its request-line limit.
URI_TOO_LONG = (
    f"The path and query string are over {MAX_TARGET_BYTES} bytes (code uri_too_long). Under API_SERVER=gunicorn, "
    "a request line over 8190 bytes is answered by gunicorn itself, with its own HTML page"
)
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}


@dataclass(frozen=True)
class Facts:
    """What the document depends on besides the code: the served signature (None: none yet) and settings.

    Equal facts hash alike through the signature's JSON (its SignatureDefs hold dicts, which do not hash).
    """

    signature: ModelSignature | None = field(compare=False)
    max_rows: int
    api_keys: bool
    signature_json: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "signature_json", self.signature.to_json() if self.signature is not None else b"")


def _json(schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    return {**response, "headers": headers} if headers else response


class Builder:
    """Builds operations with the statuses every route shares (401 with API keys, 503 where Redis is read)."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.examples = examples(facts.signature)

    def body(self, schemas: dict[str, dict[str, Any]], **example_of: str) -> dict[str, Any]:
        """A required request body; `example_of` names the example (if the model has one) per media type."""
        content = {}
        for media_type, schema in schemas.items():
            example = self.examples.get(example_of.get(media_type.replace("/", "_").replace("-", "_"), ""))
            content[media_type] = {"schema": schema, **({"example": example} if example is not None else {})}
        return {"required": True, "content": content}

    def op(
        self,
        op_id: str,
        summary: str,
        tag: str,
        ok: dict[str, Any],
        errors: tuple[int, ...],
        *,
        path: tuple[str, ...] = (),
        query: tuple[dict[str, Any], ...] = (),
        body: dict[str, Any] | None = None,
        public: bool = False,
        protocol: bool = False,
    ) -> dict[str, Any]:
        """One operation: `ok` maps its success statuses to responses; `errors` are its error statuses."""
        codes = set(errors) | ({401} if self.facts.api_keys and not public else set())
        error_schema = ref("ProtocolError" if protocol else "Error")
        responses = {
            **ok,
            **{
                str(c): _json(error_schema, TEXT[c], RETRY_AFTER if c in (409, 429, 503) else None)
                for c in sorted(codes)
            },
        }
        too_long = _json(error_schema, URI_TOO_LONG)
        too_long["content"]["text/html"] = {"schema": {"type": "string"}}
        responses["414"] = too_long
        op: dict[str, Any] = {
            "operationId": op_id,
            "summary": summary,
            "tags": [tag],
            "responses": responses,
            "parameters": [self.path_param(p) for p in path] + list(query),
        }
        if body is not None:
            op["requestBody"] = body
        if self.facts.api_keys:
            op["security"] = [] if public else [{"bearer": []}]
        return op

    def path_param(self, name: str) -> dict[str, Any]:
        """Model names and versions are the served ones (once a model is advertised); ids are any string."""
        signature = self.facts.signature
        schema: dict[str, Any] = {"type": "string"}
        if name in ("name", "version", "label"):
            schema = {"type": "string", "pattern": "^[^/:]+$"}
            if signature is not None and name != "label":
                schema = {"type": "string", "enum": [signature.name if name == "name" else signature.version]}
        elif name == "asset":
            schema = {"type": "string", "enum": sorted(ASSET_TYPES)}
        return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _link(op_id: str, param: str) -> dict[str, Any]:
    return {"operationId": op_id, "parameters": {param: "$response.body#/id"}}


IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "description": "1-255 printable ASCII characters (e.g. a UUID). The same key from the same API key "
    "within RESULT_TTL answers with the first request's job or batch, in its current state "
    "(header Idempotent-Replayed: true), and never enqueues twice.",
}
REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true when the answer is the first request's (Idempotency-Key)",
        "schema": {"type": "string"},
    }
}
WAIT = _query(
    "wait", {"type": "number", "minimum": 0, "maximum": 30}, "Seconds to hold the request until the result is ready"
)
TIMEOUT = _query(
    "timeout",
    {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_START_DEADLINE_S},
    "The job's deadline to start, in seconds (default JOB_START_DEADLINE_S)",
)
CANCEL_SUMMARY = (
    "Cancel a batch: chunks not yet started never run. Nothing is deleted: the batch stays readable (status "
    "cancelled, rows of finished chunks downloadable) until BATCH_TTL"
)
CALLBACK = _query("callback_url", ref("CallbackURL"), "POSTed the final document when it ends")


def offers(signature: ModelSignature | None, method: str) -> bool:
    """Whether TF Serving's :classify or :regress can succeed on the served model: it has a signature of that
    method (without a published model the document cannot know, and describes them)."""
    if signature is None:
        return True
    wanted = CLASSIFY_METHOD if method == "classify" else REGRESS_METHOD
    return any(d.method == wanted for d in signature.signature_defs().values())


def _service_paths(b: Builder) -> dict[str, Any]:
    jobs, ops = "Jobs", "Operations"
    pending = _json(
        ref("Pending"),
        "Queued: poll result_url",
        {"Location": {"schema": {"type": "string"}}, **RETRY_AFTER, **REPLAYED},
    )
    pending["links"] = {"result": _link("getResult", "job_id"), "cancel": _link("cancelJob", "job_id")}
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "/predict": {
            "post": b.op(
                "predict",
                "Validate rows and enqueue one job (202), or wait for its result with ?wait",
                jobs,
                {"200": _json(ref("JobDocument"), "Finished within ?wait", REPLAYED), "202": pending},
                (400, 409, 413, 415, 429, 503),
                query=(WAIT, TIMEOUT, CALLBACK, IDEMPOTENCY),
                body=b.body({JSON: ref("PredictRequest")}, application_json="predict"),
            )
        },
        "/result/{job_id}": {
            "get": b.op(
                "getResult",
                "A job's status or result; ?wait long-polls",
                jobs,
                {
                    "200": _json(ref("JobDocument"), "Finished, failed, expired or canceled"),
                    "202": _json(ref("Pending"), "Still queued or started", RETRY_AFTER),
                },
                (400, 404, 503),
                path=("job_id",),
                query=(WAIT,),
            )
        },
        "/jobs/{job_id}": {
            "delete": b.op(
                "cancelJob",
                "Cancel a job that has not started",
                jobs,
                {"200": _json(ref("JobDocument"), "Canceled")},
                (404, 409, 503),
                path=("job_id",),
            )
        },
        "/": {
            "get": b.op(
                "index",
                "This service: name, version, the published models, and links to /docs, /openapi.json, /metrics",
                ops,
                {"200": _json(ref("Index"), "What this server is")},
                (503,),
                public=True,
            )
        },
        "/healthz": {
            "get": b.op(
                "healthz",
                "The API process is alive",
                ops,
                {
                    "200": _json(
                        {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}, "Alive"
                    )
                },
                (),
                public=True,
            )
        },
        "/readyz": {
            "get": b.op(
                "readyz",
                "Redis answers and a live worker has the model",
                ops,
                {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "ready": {"type": "boolean"},
                                "workers": {"type": "integer"},
                                "scope": {"type": "string"},
                            },
                        },
                        "Ready",
                    )
                },
                (400, 503),
                public=True,
                query=(
                    _query(
                        "scope",
                        {"type": "string", "enum": ["service", "api"]},
                        "api: ask only whether this API process can take requests",
                    ),
                ),
            )
        },
        "/v1/models": {
            "get": b.op(
                "listModels",
                "The served model: name, version, inputs, outputs, micro-batching settings, live workers",
                ops,
                {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["models"],
                            "properties": {"models": {"type": "array", "items": {"type": "object"}}},
                        },
                        "The model",
                    )
                },
                (503,),
            )
        },
        "/metrics": {
            "get": b.op(
                "metrics",
                "Prometheus metrics (text exposition format)",
                ops,
                {"200": {"description": "Metrics", "content": text}},
                (),
            )
        },
        "/openapi.json": {
            "get": b.op(
                "openapi",
                "This document (its row schemas follow the served model)",
                ops,
                {"200": _json({"type": "object"}, "OpenAPI 3 document")},
                (503,),
                public=True,
            )
        },
        "/docs": {
            "get": b.op(
                "docs",
                "Swagger UI for this document (works offline)",
                ops,
                {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}},
                (),
                public=True,
            )
        },
        "/docs/{asset}": {
            "get": b.op(
                "docsAsset",
                "A Swagger UI asset served from the swagger-ui-bundle package",
                ops,
                {
                    "200": {
                        "description": "The file",
                        "content": {
                            t: {"schema": {"type": "string", "format": "binary"}} for t in set(ASSET_TYPES.values())
                        },
                    }
                },
                (404,),
                path=("asset",),
                public=True,
            )
        },
    }


def _batch_paths(b: Builder) -> dict[str, Any]:
    tag, binary = "Bulk batches", {"schema": {"type": "string", "format": "binary"}}
    on_error = {"type": "string", "enum": ["reject", "skip"]}
    # Documented narrower than the server takes (any JSON object of up to 4096 characters): 8 string values
    # of up to 64 characters fit the 4096 characters, and, percent-encoded, the API's 8000-byte URL limit.
    metadata = {
        "type": "object",
        "maxProperties": 8,
        "additionalProperties": {"type": "string", "maxLength": 64},
        "description": "A JSON object, stored and echoed on the batch",
    }
    form = {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "callback_url": ref("CallbackURL"),
            "metadata": metadata,
            "on_error": on_error,
        },
    }
    upload = b.body(
        {NDJSON: binary["schema"], "text/csv": binary["schema"], NPY: binary["schema"], "multipart/form-data": form},
        application_x_ndjson="ndjson",
        text_csv="csv",
    )
    options = (
        CALLBACK,
        {
            "name": "metadata",
            "in": "query",
            "required": False,
            "content": {JSON: {"schema": metadata}},
            "description": "A small JSON object stored and echoed on the batch",
        },
        _query("on_error", on_error, "reject (default): a bad row rejects the upload; skip: it goes to /errors"),
    )
    created = _json(ref("BatchDocument"), "Stored and queued", {"Location": {"schema": {"type": "string"}}, **REPLAYED})
    created["links"] = {
        op: _link(op, "batch_id") for op in ("getBatch", "cancelBatch", "getBatchResults", "getBatchErrors")
    }
    one = ("batch_id",)
    return {
        "/batches": {
            "post": b.op(
                "createBatch",
                "Upload a file of rows (NDJSON, CSV, .npy, or multipart); streamed and validated, then queued",
                tag,
                {"202": created},
                (400, 409, 413, 415, 503),
                query=(*options, IDEMPOTENCY),
                body=upload,
            )
        },
        "/batches/{batch_id}": {
            "get": b.op(
                "getBatch",
                "A batch's status document",
                tag,
                {"200": _json(ref("BatchDocument"), "Status")},
                (404, 503),
                path=one,
            ),
            "delete": b.op(
                "cancelBatch",
                CANCEL_SUMMARY,
                tag,
                {"200": _json(ref("BatchDocument"), "Cancelled; still readable with GET until BATCH_TTL")},
                (404, 409, 503),
                path=one,
            ),
        },
        "/batches/{batch_id}/cancel": {
            "post": b.op(
                "cancelBatchOpenAI",
                CANCEL_SUMMARY + " (OpenAI's Batch API shape; the same as DELETE /batches/{batch_id})",
                tag,
                {"200": _json(ref("BatchDocument"), "Cancelled; still readable with GET until BATCH_TTL")},
                (404, 409, 503),
                path=one,
            ),
        },
        "/batches/{batch_id}/results": {
            "get": b.op(
                "getBatchResults",
                "Predictions in input order: NDJSON {row, prediction} lines, or .npy with Accept: application/x-npy",
                tag,
                {
                    "200": {
                        "description": "Streamed results",
                        "content": {NDJSON: {"schema": {"type": "string"}}, NPY: binary},
                    }
                },
                (400, 404, 406, 409, 503),
                path=one,
                query=(_query("partial", {"type": "boolean"}, "Stream the finished prefix while the batch runs"),),
            )
        },
        "/batches/{batch_id}/errors": {
            "get": b.op(
                "getBatchErrors",
                "NDJSON of {row, error} for rows that were rejected or failed",
                tag,
                {"200": {"description": "Streamed errors", "content": {NDJSON: {"schema": {"type": "string"}}}}},
                (404, 503),
                path=one,
            )
        },
    }


def _tf_paths(b: Builder) -> dict[str, Any]:
    tag, paths = "TensorFlow Serving REST", {}
    status = {
        "type": "object",
        "required": ["model_version_status"],
        "properties": {
            "model_version_status": {"type": "array", "items": {"type": "object"}},
            "name": {"type": "string", "description": "KServe v1's model-readiness field"},
            "ready": {"type": "boolean", "description": "KServe v1's model-readiness field"},
        },
    }
    for prefix, params in (
        ("/v1/models/{name}", ("name",)),
        ("/v1/models/{name}/versions/{version}", ("name", "version")),
        ("/v1/models/{name}/labels/{label}", ("name", "label")),
    ):
        suffix = "Version" if "version" in params else "Label" if "label" in params else ""
        paths[prefix + ":predict"] = {
            "post": b.op(
                "tfPredict" + suffix,
                "Predict, row format (instances → predictions) or columnar (inputs → outputs); waits for the job",
                tag,
                {"200": _json(ref("TFPredictResponse"), "Predictions")},
                (400, 404, 413, 429, 500, 503, 504),
                path=params,
                protocol=True,
                body=b.body({JSON: ref("TFPredictRequest")}, application_json="tf"),
            )
        }
        for method, what in (("classify", "[label, score] pairs"), ("regress", "one value")):
            if not offers(b.facts.signature, method):
                continue
            paths[prefix + ":" + method] = {
                "post": b.op(
                    f"tf{method.capitalize()}{suffix}",
                    f"{method.capitalize()}: tf.Example rows through a {method} "
                    f'signature → {{"results"}}, {what} per example; waits for the job',
                    tag,
                    {
                        "200": _json(
                            {"type": "object", "required": ["results"], "properties": {"results": {"type": "array"}}},
                            "results",
                        )
                    },
                    (400, 404, 413, 429, 500, 503, 504),
                    path=params,
                    protocol=True,
                    body=b.body({JSON: ref("TFExamplesRequest")}),
                )
            }
        if "label" in params:  # TF Serving serves status by name or version only
            paths[prefix + "/metadata"] = _tf_metadata(b, tag, suffix, params)
            continue
        paths[prefix] = {
            "get": b.op(
                "tfModelStatus" + suffix,
                "Model version status (GetModelStatus)",
                tag,
                {"200": _json(status, "model_version_status")},
                (404, 503),
                path=params,
                protocol=True,
            )
        }
        paths[prefix + "/metadata"] = _tf_metadata(b, tag, suffix, params)
    return paths


def _tf_metadata(b: Builder, tag: str, suffix: str, params: tuple[str, ...]) -> dict[str, Any]:
    return {
        "get": b.op(
            "tfModelMetadata" + suffix,
            "Model metadata: every SignatureDef of the model version",
            tag,
            {"200": _json({"type": "object", "required": ["model_spec", "metadata"]}, "model_spec and signature_def")},
            (404, 503),
            path=params,
            protocol=True,
        )
    }


def _flag(name: str) -> dict[str, Any]:
    return {"type": "object", "required": [name], "properties": {name: {"type": "boolean"}}}


def _v2_paths(b: Builder) -> dict[str, Any]:
    tag = "KServe v2 / Open Inference Protocol"
    paths: dict[str, Any] = {
        "/v2/health/live": {
            "get": b.op(
                "v2Live", "Server liveness", tag, {"200": _json(_flag("live"), "Alive")}, (), public=True, protocol=True
            )
        },
        "/v2/health/ready": {
            "get": b.op(
                "v2Ready",
                "Server readiness: a live worker has the model",
                tag,
                {"200": _json(_flag("ready"), "Ready")},
                (503,),
                public=True,
                protocol=True,
            )
        },
        "/v2": {
            "get": b.op(
                "v2Server",
                "Server metadata: name, version, extensions",
                tag,
                {"200": _json({"type": "object", "required": ["name", "version", "extensions"]}, "Server metadata")},
                (),
                protocol=True,
            )
        },
    }
    binary_out = {
        "description": "Outputs: JSON, or with binary outputs the JSON header followed by raw tensors",
        "content": {
            JSON: {"schema": ref("V2InferResponse")},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
    for prefix, params in (
        ("/v2/models/{name}", ("name",)),
        ("/v2/models/{name}/versions/{version}", ("name", "version")),
    ):
        suffix = "Version" if "version" in params else ""
        paths[prefix] = {
            "get": b.op(
                "v2ModelMetadata" + suffix,
                "Model metadata: inputs and outputs (-1: any size)",
                tag,
                {"200": _json(ref("V2ModelMetadata"), "Model metadata")},
                (404, 503),
                path=params,
                protocol=True,
            )
        }
        paths[prefix + "/ready"] = {
            "get": b.op(
                "v2ModelReady" + suffix,
                "Model readiness",
                tag,
                {"200": _json({"type": "object", "required": ["name", "ready"]}, "Ready")},
                (404, 503),
                path=params,
                protocol=True,
            )
        }
        paths[prefix + "/infer"] = {
            "post": b.op(
                "v2Infer" + suffix,
                "Inference with typed tensors; waits for the job. The binary tensor data extension is accepted "
                "too (Content-Type application/octet-stream, header Inference-Header-Content-Length = the length "
                "of the JSON part) but not described here: no schema can say that the header must equal that "
                "length, so a tester reading this document would send lengths the server must refuse",
                tag,
                {"200": binary_out},
                (400, 404, 413, 415, 429, 500, 503, 504),
                path=params,
                protocol=True,
                body=b.body({JSON: ref("V2InferRequest")}, application_json="v2"),
            )
        }
    return paths


@lru_cache(maxsize=16)
def document(facts: Facts) -> bytes:
    """The whole OpenAPI document as JSON, built once per signature and settings."""
    b = Builder(facts)
    components: dict[str, Any] = {"schemas": {**FIXED_SCHEMAS, **signature_schemas(facts.signature, facts.max_rows)}}
    if facts.api_keys:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    model = (
        f"Row schemas are those of model {facts.signature.name!r} version {facts.signature.version}."
        if facts.signature
        else "No model is advertised yet: row schemas are generic until a worker loads one."
    )
    return orjson.dumps(
        {
            "openapi": "3.0.3",
            "info": {
                "title": "Batched inference queue",
                "version": VERSION,
                "description": "Flask + Redis/RQ + a micro-batching TensorFlow worker. Every route, including the "
                "TensorFlow Serving and KServe v2 ones, rides the same queue and micro-batching worker. "
                "Every response carries X-Request-ID. HEAD works on every GET route (GET without the "
                f"body); no route answers OPTIONS. {model}",
            },
            "paths": {**_service_paths(b), **_batch_paths(b), **_tf_paths(b), **_v2_paths(b)},
            "components": components,
        }
    )
