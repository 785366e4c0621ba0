# syntax=docker/dockerfile:1
# One file, one image per role; docker-compose.yml and deploy/k8s build and name them:
#   docker build --target api        -t inference-api .         Flask API (granian), no TensorFlow, no embedded Redis
#   docker build --target grpc       -t inference-grpc .        gRPC server (TF Serving's stubs need TensorFlow's protos)
#   docker build --target worker     -t inference-worker .      micro-batching worker with TensorFlow (CPU)
#   docker build --target worker-gpu -t inference-worker-gpu .  the same on TensorFlow's CUDA wheel (tensorflow[and-cuda])
# Every image runs as an unprivileged user (uid 10001) and has a HEALTHCHECK and a default CMD.
# Supply chain: the base image is pinned by digest (scripts/pin_images.sh updates it), and each image installs
# its lock file (requirements-<role>.lock: every package, one version, its SHA-256) with --require-hashes:
# a changed or substituted file fails the build. `python -m scripts.lock_requirements` rewrites the locks.
# Not built on the machines this was written on (no Docker there): tests/unit/test_images.py checks this file,
# tests/unit/test_locks.py the locks.

FROM python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7 AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app DATA_DIR=/data TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
# DATA_DIR holds batch files when STORAGE_URL is not an s3:// URL; API and workers must then share it.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
 && mkdir /data && chown app:app /data

FROM base AS api
COPY requirements-api.lock .
RUN pip install --require-hashes --no-deps -r requirements-api.lock
COPY shared shared
COPY api api
USER 10001
ENV API_HOST=0.0.0.0 API_PORT=8000
# HTTP API: REST, TF Serving REST, KServe v2 REST.
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["python", "-m", "api.serve"]

FROM base AS grpc
COPY requirements-grpc.lock .
# tensorflow-serving-api pulls in TensorFlow: its stubs import TensorFlow's protobuf modules. The server never
# loads a model; it queues jobs for the workers exactly as the HTTP API does.
RUN pip install --require-hashes --no-deps -r requirements-grpc.lock
COPY shared shared
COPY api api
USER 10001
ENV API_HOST=0.0.0.0 GRPC_PORT=8500
# TF Serving's gRPC port; TF Serving's PredictionService and KServe v2's GRPCInferenceService.
EXPOSE 8500
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import socket; socket.create_connection(('127.0.0.1', 8500), timeout=4).close()"]
CMD ["python", "-m", "api.protocols.grpc_server"]

FROM base AS worker
COPY requirements-worker.lock .
RUN pip install --require-hashes --no-deps -r requirements-worker.lock
COPY shared shared
COPY worker worker
# The example model, baked in. Serve your own by mounting it read-only and setting MODEL_PATH, or by
# building FROM this image with your model COPYed in: never a named volume seeded from an image.
COPY models/digits.keras models/digits.keras
USER 10001
# The loop touches LIVENESS_FILE on every turn; the HEALTHCHECK fails when it is older than 60 s (a hung
# model call). start-period: loading and warming up the model comes first.
ENV MODEL_PATH=/app/models/digits.keras LIVENESS_FILE=/tmp/worker-alive
HEALTHCHECK --interval=15s --timeout=10s --start-period=180s --retries=3 \
  CMD ["python", "-m", "worker.liveness", "--max-age-s", "60"]
CMD ["python", "-m", "worker"]

FROM worker AS worker-gpu
USER root
# The same TensorFlow version with its CUDA and cuDNN wheels; needs the NVIDIA driver and container toolkit on the host.
# requirements-worker-gpu.lock: the worker's packages plus tensorflow[and-cuda]==2.21.0 and the NVIDIA wheels.
COPY requirements-worker-gpu.lock .
RUN pip install --require-hashes --no-deps -r requirements-worker-gpu.lock
USER 10001
