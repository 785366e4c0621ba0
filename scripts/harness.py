"""The one way to start the service's processes: Redis (embedded unless the settings name one), the
API (granian or gunicorn, API_SERVER) and N inference workers, each of which can be killed and started again.

`make run` (scripts/stack.py supervises it), the tests (tests/support.py), the soak (scripts/soak.py)
and the benchmarks (bench/run.py) all use it. Children get the settings through `Settings.to_env()`,
each in a session of its own, so a signal meant for one (or the terminal's Ctrl-C) reaches no other.
"""

from __future__ import annotations

import enum
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scripts.embedded_redis import EmbeddedRedis
from shared.config import PROJECT_ROOT, Settings

# A worker finishing a large micro-batch; the API draining for up to api/serve.py DRAIN_S (a 30 s long-poll),
# after which granian SIGKILLs a process that refused to stop and exits 0: wait past that, not up to it.
STOP_TIMEOUT_S = 45.0


class Role(enum.Enum):
    """What a child process is."""

    API = "api"
    GRPC = "grpc"
    WORKER = "worker"


@dataclass
class Child:
    """One started process of the service: its role, a name unique in the harness, and its log file."""

    role: Role
    name: str
    process: subprocess.Popen
    log_path: Path | None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def own_stack_settings(data_dir: str, **overrides: object) -> Settings:
    """Settings for a stack of a drill's own (soak, fuzz, drills): the environment's, but with the embedded Redis
    and the API on free loopback ports and its state under `data_dir`, whatever Redis the environment names."""
    return Settings.from_env().replace(
        redis_url="",
        redis_sentinels="",
        redis_sentinel_master="",
        redis_port=free_port(),
        api_port=free_port(),
        data_dir=data_dir,
        **overrides,
    )


def child_env(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: ours, plus the settings, plus `extra`."""
    env = dict(os.environ)
    env.update(settings.to_env())
    env["PYTHONPATH"] = PROJECT_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def spawn(
    command: list[str], settings: Settings, log: IO[bytes] | None = None, extra_env: Mapping[str, str] | None = None
) -> subprocess.Popen:
    """Start `command` from the project root in a new session, with the settings in its environment."""
    return subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=child_env(settings, extra_env),
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def signal_group(process: subprocess.Popen, sig: int) -> None:
    """Send `sig` to the process's group (the API server's processes, or a worker's)."""
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def stop(process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S, sig: int = signal.SIGTERM) -> int | None:
    """Signal a process group and wait; SIGKILL it if it does not exit in time."""
    if process.poll() is None:
        signal_group(process, sig)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            process.wait()
    return process.returncode


def wait_http(url: str, timeout_s: float, process: subprocess.Popen | None = None, status: int = 200) -> None:
    """Wait until GET `url` answers `status`; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not answers(url, status):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer {status} within {timeout_s} s")
        time.sleep(0.1)


def answers(url: str, status: int = 200) -> bool:
    """Whether GET `url` answers `status` right now."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == status
    except OSError as exc:
        return getattr(exc, "code", None) == status


class Harness:
    """Redis, the API and workers for one set of settings; logs go to `log_dir/<name>.log`, or to our own
    stdout and stderr when `log_dir` is None (`make run`).

    Without API_KEYS, the children get ALLOW_ANONYMOUS=true: `make run` and the tests are local, open uses.
    With neither REDIS_URL nor REDIS_SENTINELS set, `start_redis` starts the embedded Redis on REDIS_PORT
    and the children are given its URL, so that none of them starts one of its own.
    """

    def __init__(self, settings: Settings, log_dir: Path | None = None) -> None:
        # Local runs and tests without keys opt in to anonymous access (a served API refuses it by default).
        self.settings = settings if settings.api_keys else settings.replace(allow_anonymous=True)
        self.log_dir = log_dir
        self.redis_server: EmbeddedRedis | None = None
        self.api: Child | None = None
        self.grpc: Child | None = None
        self.workers: list[Child] = []
        self._started = 0

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.settings.api_host in ("0.0.0.0", "") else self.settings.api_host
        return f"http://{host}:{self.settings.api_port}"

    def start_redis(self, databases: int = 64) -> EmbeddedRedis | None:
        """Start the embedded Redis unless the settings name one; returns it (None: external Redis)."""
        if self.settings.external_redis and self.redis_server is None:
            return None
        if self.redis_server is None:
            self.redis_server = EmbeddedRedis(
                self.settings.redis_port,
                os.path.join(self.settings.data_dir, "redis"),
                self.settings.redis_appendfsync,
                databases,
            )
            self.settings = self.settings.replace(redis_url=self.redis_server.url)
        return self.redis_server.start()

    def kill_redis(self) -> None:
        """SIGKILL the embedded Redis (a crash: the AOF keeps what was fsynced)."""
        assert self.redis_server is not None, "no embedded Redis in this harness"
        self.redis_server.stop(kill=True)

    def restart_redis(self) -> None:
        """Start the embedded Redis again on the same port and data."""
        assert self.redis_server is not None, "no embedded Redis in this harness"
        self.redis_server.start()

    def start_api(self, wait_s: float | None = 30.0) -> Child:
        """Start the API under the WSGI server API_SERVER names (api/serve.py: granian or gunicorn); with
        `wait_s`, return once /healthz answers."""
        self.api = self._start(Role.API, "api", [sys.executable, "-m", "api.serve"])
        if wait_s is not None:
            wait_http(f"{self.base_url}/healthz", wait_s, self.api.process)
        return self.api

    def start_grpc(self) -> Child:
        """Start the gRPC server (TF Serving's and KServe v2's gRPC APIs on GRPC_PORT)."""
        self.grpc = self._start(Role.GRPC, "grpc", [sys.executable, "-m", "api.protocols.grpc_server"])
        return self.grpc

    def start_worker(self, extra_env: Mapping[str, str] | None = None) -> Child:
        """Start one inference worker (it registers once its model is loaded)."""
        worker = self._start(Role.WORKER, f"worker-{self._started}", [sys.executable, "-m", "worker"], extra_env)
        self._started += 1
        self.workers.append(worker)
        return worker

    def restart(self, child: Child) -> Child:
        """Start a process like `child` (which has exited) in its place."""
        if child.role is Role.API:
            return self.start_api(wait_s=None)
        if child.role is Role.GRPC:
            return self.start_grpc()
        replacement = self._start(Role.WORKER, child.name, [sys.executable, "-m", "worker"], child.extra_env)
        self.workers[self.workers.index(child)] = replacement
        return replacement

    def kill(self, child: Child, sig: int = signal.SIGKILL) -> int | None:
        """Send `sig` to the child's group; for SIGKILL, wait until it is gone and return its status."""
        signal_group(child.process, sig)
        return child.process.wait(timeout=10) if sig == signal.SIGKILL else None

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Wait until /readyz answers 200 (a worker has the model loaded); raise if the API or every worker died."""
        deadline = time.monotonic() + timeout_s
        while not answers(f"{self.base_url}/readyz"):
            if self.api is not None and not self.api.running:
                raise RuntimeError(f"the API exited with {self.api.returncode} before it was ready")
            if self.workers and not any(w.running for w in self.workers):
                raise RuntimeError(
                    f"every worker exited ({', '.join(str(w.returncode) for w in self.workers)}) before one was ready"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.base_url}/readyz did not answer 200 within {timeout_s} s")
            time.sleep(0.1)

    def children(self) -> list[Child]:
        return [c for c in (self.api, self.grpc) if c is not None] + self.workers

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the API and the workers together (they finish what they hold; workers deregister), wait,
        SIGKILL what is still running after `timeout_s`; then stop Redis, last, so they can still reach it."""
        running = [c for c in self.children() if c.running]
        for child in running:
            signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in running:
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                stop(child.process, 10, signal.SIGKILL)
        if self.redis_server is not None:
            self.redis_server.stop()

    def log_text(self, tail_chars: int = 3000) -> str:
        """The end of every log file, for failure messages."""
        if self.log_dir is None:
            return ""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-tail_chars:]}" for p in sorted(self.log_dir.glob("*.log"))
        )

    def _start(self, role: Role, name: str, command: list[str], extra_env: Mapping[str, str] | None = None) -> Child:
        if self.log_dir is None:
            log_path, process = None, spawn(command, self.settings, None, extra_env)
        else:
            log_path = self.log_dir / f"{name}.log"
            with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
                process = spawn(command, self.settings, log, extra_env)
        return Child(role, name, process, log_path, dict(extra_env or {}))
