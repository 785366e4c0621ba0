"""What the gRPC services share with each other and with the HTTP API: the jobs in Redis and model info (the same
Redis, queue and workers), API keys, and one mapping from our errors to gRPC status codes.

    InvalidInput -> INVALID_ARGUMENT    Unauthorized -> UNAUTHENTICATED    NotFound -> NOT_FOUND
    QueueFull -> RESOURCE_EXHAUSTED     NotReady, Redis down -> UNAVAILABLE TimedOut -> DEADLINE_EXCEEDED
    InferenceFailed and anything else -> INTERNAL
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np
import redis

from api.jobs.redis_jobs import RedisJobs
from api.jobs.submit import Predictions, run_job
from api.model_info import ModelInfo, Served
from api.validation import to_array
from shared import tenants
from shared.config import Settings
from shared.connection import connect
from shared.errors import (
    Conflict,
    InferenceFailed,
    InvalidInput,
    NotFound,
    NotReady,
    PayloadTooLarge,
    QueueFull,
    ServiceError,
    TimedOut,
    Unauthorized,
    UnsupportedMediaType,
)
from shared.logs import request_id_or_new
from shared.signature import ModelSignature

log = logging.getLogger("api.grpc")

STATUS_CODES: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    UnsupportedMediaType: grpc.StatusCode.INVALID_ARGUMENT,
    Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.FAILED_PRECONDITION,
    PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    QueueFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    NotReady: grpc.StatusCode.UNAVAILABLE,
    TimedOut: grpc.StatusCode.DEADLINE_EXCEEDED,
    InferenceFailed: grpc.StatusCode.INTERNAL,
}
# Methods anyone may call, as the HTTP health routes: liveness and readiness carry no data.
PUBLIC_METHODS = frozenset(
    {"/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady"}
)


@dataclass
class Backend:
    """The gRPC server's view of the service: one RedisJobs and one model-info cache, shared by every call."""

    settings: Settings
    jobs: RedisJobs
    model_info: ModelInfo

    @classmethod
    def from_settings(cls, settings: Settings) -> Backend:
        connection = connect(settings)
        jobs = RedisJobs(connection, settings, tenants.load(settings))
        return cls(settings, jobs, ModelInfo(connection, settings.queue_name))

    def owner(self, context: grpc.ServicerContext) -> str:
        """The caller's owner string (api/auth.py): the digest of the key AuthInterceptor accepted, "" with keys
        off. Its jobs go to that key's sub-queue and count against its limits, as on HTTP."""
        if not self.jobs.tenants.by_digest:
            return ""
        return presented_digest(dict(context.invocation_metadata() or ())).hex()

    def infer(
        self, arrays: dict[str, np.ndarray], served: Served, owner: str, signature: str | None = None
    ) -> Predictions:
        """Queue one job of `owner` for the model version `served` names and wait for it, as the HTTP routes do."""
        timeout_s = self.settings.protocol_timeout_s
        return run_job(self.jobs, timeout_s, arrays, signature, request_id_or_new(None), served, owner)


def status_code(error: ServiceError) -> grpc.StatusCode:
    return next((code for kind, code in STATUS_CODES.items() if isinstance(error, kind)), grpc.StatusCode.INTERNAL)


def message(error: ServiceError) -> str:
    """The error's sentence, with the field and the expected form when it names them."""
    details = "; ".join(
        d
        for d in (f"field {error.field}" if error.field else "", f"expected {error.expected}" if error.expected else "")
        if d
    )
    return error.message + (f" ({details})" if details else "")


F = TypeVar("F", bound=Callable[..., Any])


def rpc(method: F) -> F:
    """Run a servicer method, turning our errors (and a Redis outage) into a gRPC status with a message."""

    @functools.wraps(method)
    def call(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except ServiceError as exc:
            context.abort(status_code(exc), message(exc))
        except (redis.ConnectionError, redis.TimeoutError):
            context.abort(grpc.StatusCode.UNAVAILABLE, "Redis is not reachable; try again shortly")
        except ValueError as exc:  # a tensor that does not fit its own shape or dtype
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    return call  # type: ignore[return-value]


def check_arrays(arrays: dict[str, np.ndarray], signature: ModelSignature, max_rows: int) -> dict[str, np.ndarray]:
    """Check named input arrays against the signature as the HTTP routes check rows; returns model-typed arrays."""
    names = {t.name for t in signature.inputs}
    if set(arrays) != names:
        raise InvalidInput(
            f"inputs {sorted(arrays)} do not match the signature's inputs {sorted(names)}",
            field="inputs",
            expected=", ".join(sorted(names)),
        )
    checked = {}
    for spec in signature.inputs:
        array = arrays[spec.name]
        if array.ndim == 0 or not 1 <= len(array) <= max_rows:
            raise InvalidInput(
                f"input {spec.name!r} has shape {list(array.shape)}",
                field=spec.name,
                expected=f"a batch of 1 to {max_rows} rows (MAX_ROWS_PER_REQUEST)",
            )
        checked[spec.name] = to_array(array, spec, spec.name)
    if len({len(a) for a in checked.values()}) > 1:
        raise InvalidInput("inputs have different numbers of rows", field="inputs", expected="the same batch size")
    return checked


def presented_digest(metadata: dict[str, Any]) -> bytes:
    """The SHA-256 of the key in the metadata's `authorization: Bearer <key>` (of "" when there is none)."""
    presented = str(metadata.get("authorization", "")).partition(" ")[2]
    return hashlib.sha256(presented.strip().encode("latin-1", "replace")).digest()


class AuthInterceptor(grpc.ServerInterceptor):
    """API keys as on HTTP: metadata `authorization: Bearer <key>`, else UNAUTHENTICATED (health calls excepted)."""

    def __init__(self, digests: Iterable[str]) -> None:
        """`digests`: the SHA-256 (hex) of every valid key (shared/tenants.py)."""
        self._digests = tuple(bytes.fromhex(d) for d in digests)

    def intercept_service(self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails) -> Any:
        if not self._digests or handler_call_details.method in PUBLIC_METHODS:
            return continuation(handler_call_details)
        headers = dict(handler_call_details.invocation_metadata or ())
        scheme, _, presented = str(headers.get("authorization", "")).partition(" ")
        digest = presented_digest(headers)
        matched = False
        for known in self._digests:  # every key, each in constant time
            matched |= hmac.compare_digest(digest, known)
        if scheme.lower() == "bearer" and presented.strip() and matched:
            return continuation(handler_call_details)
        why = "the API key is not valid" if presented.strip() else "this server needs an API key"
        return grpc.unary_unary_rpc_method_handler(
            lambda request, context: context.abort(
                grpc.StatusCode.UNAUTHENTICATED, f"{why} (expected metadata authorization: Bearer <key>)"
            )
        )
