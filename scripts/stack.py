"""Start and stop the service's processes: embedded Redis, the gunicorn API and inference workers.

`make run` uses `run_forever`; tests and benchmarks use the same functions with their own settings.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping

from shared.config import PROJECT_ROOT, Settings
from shared.embedded_redis import EmbeddedRedis


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: ours, plus the settings, plus `extra`."""
    env = dict(os.environ)
    env.update(settings.to_env())
    env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def start_api(settings: Settings, log_file=None) -> subprocess.Popen:
    """Start gunicorn serving the API with `settings`."""
    cmd = [sys.executable, "-m", "gunicorn", "-c", os.path.join(PROJECT_ROOT, "api", "gunicorn_conf.py"), "api.wsgi:app"]
    return subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=child_env(settings), stdout=log_file, stderr=log_file,
                            start_new_session=True)


def start_worker(settings: Settings, log_file=None, extra_env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start one inference worker with `settings`."""
    return subprocess.Popen([sys.executable, "-m", "worker"], cwd=PROJECT_ROOT, env=child_env(settings, extra_env),
                            stdout=log_file, stderr=log_file, start_new_session=True)


def start_grpc(settings: Settings, log_file=None) -> subprocess.Popen:
    """Start the gRPC server (TF Serving's and KServe v2's gRPC APIs on GRPC_PORT) with `settings`."""
    return subprocess.Popen([sys.executable, "-m", "api.grpc_server"], cwd=PROJECT_ROOT, env=child_env(settings),
                            stdout=log_file, stderr=log_file, start_new_session=True)


def wait_http(url: str, timeout_s: float, process: subprocess.Popen | None = None, status: int = 200) -> None:
    """Wait until GET `url` answers `status`; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == status:
                    return
        except OSError as exc:
            if getattr(exc, "code", None) == status:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer {status} within {timeout_s} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen, timeout_s: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
    """Signal a process group and wait; SIGKILL it if it does not exit in time."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def run_forever(settings: Settings) -> int:
    """`make run`: Redis (unless REDIS_URL), the API and WORKERS workers, until Ctrl-C or SIGTERM."""
    redis_server = None
    if not settings.redis_url:
        redis_server = EmbeddedRedis(settings.redis_port, os.path.join(settings.data_dir, "redis"),
                                     settings.redis_appendfsync).start()
        print(f"redis     {redis_server.url} (embedded, AOF in {redis_server.data_dir})", flush=True)
    processes = [start_api(settings)] + [start_worker(settings) for _ in range(settings.workers)]
    if settings.grpc_port:
        processes.append(start_grpc(settings))
        print(f"grpc      {settings.api_host}:{settings.grpc_port} (TF Serving and KServe v2 gRPC APIs)", flush=True)
    base = f"http://{settings.api_host}:{settings.api_port}"
    stopping = False

    def request_stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        wait_http(f"{base}/readyz", 180, processes[1])
        print(f"ready     {base}  (POST {base}/predict, GET {base}/result/<id>; Ctrl-C stops)", flush=True)
        while not stopping and all(p.poll() is None for p in processes):
            time.sleep(0.2)
    except RuntimeError as exc:
        print(f"error     {exc}", file=sys.stderr)
    finally:
        print("stopping...", flush=True)
        for process in reversed(processes):
            stop(process)
        if redis_server:
            redis_server.stop()
    failed = [p.returncode for p in processes if p.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed and not stopping else 0


if __name__ == "__main__":
    sys.exit(run_forever(Settings.from_env()))
