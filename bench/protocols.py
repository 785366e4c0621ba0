"""gRPC against HTTP for the same requests: TF Serving's Predict and KServe v2's infer, each over both
transports, one row of the light model per request, closed-loop clients in their own process.

`python -m bench.protocols --protocol grpc-kserve --target 127.0.0.1:8500 --clients 8 --seconds 5` prints one
JSON object shaped like bench/loadgen.py's (requests, jobs, seconds, latencies_ms, errors); `measure`
runs every protocol at each client count against a running service and returns rows for the bench table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import orjson

PROTOCOLS = ("http-tfserving", "grpc-tfserving", "http-kserve", "grpc-kserve")
CLIENTS = (1, 64)


def _caller(protocol: str, target: str, model: str, row: list[float]) -> Callable[[], None]:
    """One blocking call of `protocol` (raises on any error); every call of a client reuses its connection."""
    import numpy as np

    x = np.asarray([row], np.float32)
    if protocol.startswith("http"):
        import httpx

        client = httpx.Client(base_url=f"http://{target}", timeout=60)
        if protocol == "http-tfserving":
            body = orjson.dumps({"instances": x.tolist()})
            return lambda: client.post(f"/v1/models/{model}:predict", content=body).raise_for_status()
        body = orjson.dumps(
            {"inputs": [{"name": "pixels", "shape": list(x.shape), "datatype": "FP32", "data": x.reshape(-1).tolist()}]}
        )
        return lambda: client.post(f"/v2/models/{model}/infer", content=body).raise_for_status()
    import grpc

    channel = grpc.insecure_channel(target)
    if protocol == "grpc-tfserving":
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.inputs["pixels"].CopyFrom(tf.make_tensor_proto(x))
        return lambda: stub.Predict(request, 60)
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    request = service_pb2.ModelInferRequest(model_name=model, raw_input_contents=[x.tobytes()])
    request.inputs.add(name="pixels", datatype="FP32", shape=list(x.shape))
    return lambda: stub.ModelInfer(request, timeout=60)


def run(protocol: str, target: str, model: str, clients: int, seconds: float) -> dict:
    """Closed-loop `clients` threads for `seconds`; one row per call."""
    from sklearn.datasets import load_digits

    row = load_digits().data[0].tolist()
    callers = [_caller(protocol, target, model, row) for _ in range(clients)]
    for call in callers:  # connect and warm up before the clock starts
        try:
            call()
        except Exception:
            pass
    latencies: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds

    def client(call: Callable[[], None]) -> None:
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                call()
            except Exception:
                errors[0] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(c,)) for c in callers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {
        "requests": len(latencies) + errors[0],
        "jobs": len(latencies),
        "seconds": elapsed,
        "latencies_ms": latencies,
        "errors": errors[0],
    }


def measure(
    name: str,
    http_target: str,
    grpc_target: str,
    seconds: float,
    env: dict[str, str],
    summarize: Callable[[dict], dict],
) -> list[dict]:
    """Every protocol at every client count, each in a fresh load process; bench table rows."""
    rows = []
    for protocol in PROTOCOLS:
        target = grpc_target if protocol.startswith("grpc") else http_target
        for clients in CLIENTS:
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.protocols",
                    "--protocol",
                    protocol,
                    "--target",
                    target,
                    "--model",
                    name,
                    "--clients",
                    str(clients),
                    "--seconds",
                    str(seconds),
                ],
                check=True,
                capture_output=True,
                env=env,
            )
            result = summarize(orjson.loads(out.stdout))
            rows.append(
                {"model": name, "system": "service", "mode": protocol.replace("-", " "), "clients": clients, **result}
            )
            print(
                f"protocols {name} {protocol} {clients} clients: {result['throughput']:.0f} req/s "
                f"p50 {result['p50_ms']:.1f} p99 {result['p99_ms']:.1f} ms",
                file=sys.stderr,
                flush=True,
            )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--model", default="light")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    sys.stdout.buffer.write(orjson.dumps(run(args.protocol, args.target, args.model, args.clients, args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
