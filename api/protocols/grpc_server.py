"""The gRPC server process (`python -m api.protocols.grpc_server`): TF Serving's and KServe v2's gRPC APIs on one port
(GRPC_PORT, on API_HOST), through the same Redis queue and workers as the HTTP API.

It exits at once (status 0) when GRPC_PORT is 0. SIGTERM or SIGINT stops it gracefully: calls in progress
get up to PROTOCOL_TIMEOUT_S to finish.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from concurrent import futures

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the TF Serving protos import TensorFlow

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
from tritonclient.grpc import service_pb2_grpc

from api.protocols.grpc_backend import AuthInterceptor, Backend
from api.protocols.kserve_grpc import InferenceService
from api.protocols.tfserving_grpc import ModelService, PredictionService
from shared import tenants
from shared.config import Settings
from shared.logs import configure_logging

log = logging.getLogger("api.grpc")


def build_server(settings: Settings) -> tuple[grpc.Server, int]:
    """A started gRPC server with every service, and the port it listens on."""
    backend = Backend.from_settings(settings)
    limit = settings.max_content_length
    # One thread per call in flight: each waits on its job, as a gunicorn thread does for a protocol route.
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.api_processes * settings.api_threads),
        interceptors=[AuthInterceptor(tenants.load(settings).by_digest)],
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", -1)],
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(backend), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(backend), server)
    service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceService(backend), server)
    port = server.add_insecure_port(f"{settings.api_host}:{settings.grpc_port}")
    if not port:
        raise OSError(f"cannot listen on {settings.api_host}:{settings.grpc_port} (GRPC_PORT)")
    server.start()
    return server, port


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    settings.require_keys_or_anonymous()
    if not settings.grpc_port:
        log.info("GRPC_PORT is 0: no gRPC server")
        return 0
    server, port = build_server(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info(
        "gRPC server listening on %s:%d (TF Serving PredictionService, ModelService; KServe v2 GRPCInferenceService)",
        settings.api_host,
        port,
    )
    stop.wait()
    log.info("gRPC server stopping")
    server.stop(settings.protocol_timeout_s).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
