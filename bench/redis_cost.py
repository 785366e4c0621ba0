"""What jobs cost Redis, from its own counters: commands, CPU and memory per job, read with INFO before and
after a phase (a load point of `make bench`, or the Redis-only benchmark).

Redis CPU is `used_cpu_sys + used_cpu_user` (the server process, all its threads); memory is `used_memory`
after every job of the phase has finished, so it is what a finished job (its result included) keeps.
The INFO calls this module makes are not counted as commands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import redis

IGNORED = frozenset({"info"})  # the meter's own reads
TOP_COMMANDS = 10


@dataclass(frozen=True)
class RedisCounters:
    """Redis's cumulative counters at one moment."""

    calls: dict[str, int]  # per command name (lower case, e.g. "hset", "evalsha")
    cpu_s: float
    used_memory: int

    @property
    def commands(self) -> int:
        return sum(n for name, n in self.calls.items() if name not in IGNORED)


@dataclass(frozen=True)
class RedisCost:
    """Per-job cost of a phase of `jobs` jobs."""

    jobs: int
    commands_per_job: float
    cpu_ms_per_job: float
    memory_bytes_per_job: float
    top_commands_per_job: dict[str, float]

    @property
    def jobs_per_redis_core_s(self) -> float | None:
        """The ceiling one Redis core sets at this cost: 1 / CPU per job."""
        return 1000 / self.cpu_ms_per_job if self.cpu_ms_per_job > 0 else None

    def to_dict(self) -> dict:
        return {**asdict(self), "jobs_per_redis_core_s": self.jobs_per_redis_core_s}

    def describe(self) -> str:
        """One line for people."""
        top = ", ".join(f"{name.upper()} {n:.1f}" for name, n in list(self.top_commands_per_job.items())[:8])
        ceiling = self.jobs_per_redis_core_s
        return (
            f"{self.commands_per_job:.1f} commands, {self.cpu_ms_per_job:.3f} ms Redis CPU "
            f"(≈ {ceiling or 0:,.0f} jobs/s per Redis core), {self.memory_bytes_per_job / 1024:.2f} KB "
            f"memory per job over {self.jobs:,} jobs; top: {top}"
        )


def read_counters(client: redis.Redis) -> RedisCounters:
    """INFO commandstats, cpu and memory, in one round trip."""
    info = client.info("all")
    calls = {
        key.removeprefix("cmdstat_").lower(): int(value["calls"])
        for key, value in info.items()
        if key.startswith("cmdstat_")
    }
    # redis-py parses "cmdstat_*" under "commandstats" in some versions and at top level in others.
    for name, value in (info.get("commandstats") or {}).items():
        calls[name.removeprefix("cmdstat_").lower()] = int(value["calls"])
    return RedisCounters(calls, float(info["used_cpu_sys"]) + float(info["used_cpu_user"]), int(info["used_memory"]))


def cost(before: RedisCounters, after: RedisCounters, jobs: int) -> RedisCost:
    """The per-job cost between two readings."""
    n = max(jobs, 1)
    per_command = {
        name: (after.calls.get(name, 0) - before.calls.get(name, 0)) / n for name in after.calls if name not in IGNORED
    }
    top = dict(sorted(((k, v) for k, v in per_command.items() if v > 0), key=lambda kv: -kv[1])[:TOP_COMMANDS])
    return RedisCost(
        jobs,
        (after.commands - before.commands) / n,
        (after.cpu_s - before.cpu_s) * 1000 / n,
        (after.used_memory - before.used_memory) / n,
        top,
    )


class RedisMeter:
    """Reads Redis's counters at `start()`; `finish(jobs)` gives the per-job cost since then."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._before: RedisCounters | None = None

    def start(self) -> None:
        self._before = read_counters(self.client)

    def finish(self, jobs: int) -> RedisCost:
        if self._before is None:
            raise RuntimeError("RedisMeter.finish() called before start()")
        return cost(self._before, read_counters(self.client), jobs)
