"""`make run`: the harness's processes, supervised until Ctrl-C or SIGTERM.

- A worker (or the API, or the embedded Redis) that dies is started again after a backoff that doubles
  from 1 s up to 30 s, and is logged; the rest keep serving. The backoff resets once a process has run
  for a minute.
- A worker that cannot load its model exits with status 3: starting it again would fail the same way,
  so the whole stack stops and says why.
- Ctrl-C and SIGTERM stop the API and the workers first (they finish what they hold and deregister),
  then Redis. Every child runs in a session of its own, so the terminal's Ctrl-C reaches only us.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass, field

from scripts.harness import Child, Harness, Role, answers
from shared.config import ConfigError, Settings

MODEL_LOAD_FAILED = 3  # the worker's exit status for a model it cannot load (worker/__main__.py)
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
HEALTHY_AFTER_S = 60.0  # a process that ran this long before dying starts again after FIRST_BACKOFF_S
TICK_S = 0.2
READY_PROBE_S = 1.0  # how often /readyz is asked until it first answers 200 (each ask is an access-log line)


def say(what: str, message: str) -> None:
    """One line of the supervisor's own log, aligned like `ready     http://...`."""
    print(f"{what:<9} {message}", flush=True)


def describe_exit(code: int | None) -> str:
    """'exit status 1' or 'signal SIGKILL'."""
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


@dataclass
class Restart:
    """A child that died and when it is due to start again."""

    child: Child
    due: float


@dataclass
class Supervisor:
    """Keeps the harness's children running; `run` returns the exit status of `make run`."""

    harness: Harness
    backoff_s: dict[str, float] = field(default_factory=dict)
    pending: list[Restart] = field(default_factory=list)
    stopping: bool = False
    fatal: str = ""

    def request_stop(self, signum: int, _frame: object) -> None:
        if not self.stopping:
            say("stopping", f"received {signal.Signals(signum).name}: stopping the API and workers, then Redis")
        self.stopping = True

    def run(self) -> int:
        """Start everything, supervise until a stop is requested or a worker cannot load its model."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        try:
            self._start_all()
            self._supervise()
        finally:
            say("stopping", "API and workers first, Redis last")
            self.harness.stop()
        if self.fatal:
            print(f"error     {self.fatal}", file=sys.stderr, flush=True)
            return 1
        say("stopped", "every process has exited")
        return 0

    def _start_all(self) -> None:
        settings = self.harness.settings
        server = self.harness.start_redis()
        if server is not None:
            say("redis", f"{server.url} (embedded, AOF in {server.data_dir})")
        elif settings.redis_sentinels:
            say("redis", f"the master {settings.redis_sentinel_master!r} named by Sentinels {settings.redis_sentinels}")
        api = self.harness.start_api(wait_s=None)
        say("api", f"pid {api.pid}")
        if settings.grpc_port:
            grpc = self.harness.start_grpc()
            say(
                "grpc", f"pid {grpc.pid}, {settings.api_host}:{settings.grpc_port} (TF Serving and KServe v2 gRPC APIs)"
            )
        for _ in range(settings.workers):
            worker = self.harness.start_worker()
            say(worker.name, f"pid {worker.pid}")

    def _supervise(self) -> None:
        base = self.harness.base_url
        ready, next_probe = False, 0.0
        while not self.stopping and not self.fatal:
            self._check_children()
            self._restart_due()
            if not ready and time.monotonic() >= next_probe:
                next_probe = time.monotonic() + READY_PROBE_S
                if answers(f"{base}/readyz"):
                    ready = True
                    say("ready", f"{base}  (POST {base}/predict, GET {base}/result/<id>; Ctrl-C stops)")
            time.sleep(TICK_S)

    def _check_children(self) -> None:
        waiting = {id(r.child) for r in self.pending}
        for child in self.harness.children():
            if child.running or id(child) in waiting:
                continue
            if child.role is Role.WORKER and child.returncode == MODEL_LOAD_FAILED:
                self.fatal = (
                    f"{child.name} cannot load its model (exit status {MODEL_LOAD_FAILED}: see its log "
                    f"above); starting it again would fail the same way, so the stack stops"
                )
                return
            self._schedule(child)
        server = self.harness.redis_server
        if server is not None and server.process is not None and server.process.poll() is not None:
            say("redis", f"redis-server exited ({describe_exit(server.process.returncode)}); starting it again")
            self.harness.restart_redis()

    def _schedule(self, child: Child) -> None:
        ran_s = time.monotonic() - child.started_at
        backoff = FIRST_BACKOFF_S if ran_s >= HEALTHY_AFTER_S else self.backoff_s.get(child.name, FIRST_BACKOFF_S)
        self.backoff_s[child.name] = min(2 * backoff, MAX_BACKOFF_S)
        say(
            child.name,
            f"pid {child.pid} died ({describe_exit(child.returncode)}) after {ran_s:.0f} s; "
            f"starting it again in {backoff:g} s",
        )
        self.pending.append(Restart(child, time.monotonic() + backoff))

    def _restart_due(self) -> None:
        now = time.monotonic()
        for restart in [r for r in self.pending if r.due <= now]:
            self.pending.remove(restart)
            replacement = self.harness.restart(restart.child)
            say(replacement.name, f"pid {replacement.pid} started again")


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"error     {exc}", file=sys.stderr)
        return 2
    return Supervisor(Harness(settings)).run()


if __name__ == "__main__":
    sys.exit(main())
