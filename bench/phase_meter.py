"""Around one load phase of `make bench`: what the jobs cost Redis, where the CPU went, how busy the model was.

- Redis: commands, CPU and memory per job (bench/redis_cost.py, INFO before and after).
- CPU split, in cores used over the phase's wall time: each service process tree (from /proc), the load
  generator (the CPU of the children this process reaped during the phase: the loadgen subprocess), the
  rest of the machine (other processes), and what stayed idle (/proc/stat).
- Model busy fraction: seconds the workers spent in the model call (the `model_s` field of the worker
  stats hash, `keys.stats()`, a float summed with HINCRBYFLOAT) over the phase's wall time. None while the
  worker does not publish that field.

    meter = PhaseMeter(pids, redis_client); meter.start(); ...run the load...; row.update(meter.finish(jobs))
"""

from __future__ import annotations

import os
import resource
import time

import redis

from bench import procstats
from bench.redis_cost import RedisMeter
from shared import keys

MODEL_SECONDS_FIELD = "model_s"


def _machine_jiffies() -> tuple[int, int]:
    """(all, idle + iowait) CPU jiffies of the whole machine since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields[:8]), fields[3] + fields[4]


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class PhaseMeter:
    """Counters at `start()`; `finish(jobs)` gives the phase's Redis cost, CPU split and model busy fraction."""

    def __init__(self, pids: dict[str, int], client: redis.Redis | None) -> None:
        self.pids = pids
        self.client = client
        self.redis = RedisMeter(client) if client is not None else None
        self._start: dict | None = None

    def _model_s(self) -> float | None:
        if self.client is None:
            return None
        raw = self.client.hget(keys.stats(), MODEL_SECONDS_FIELD)
        return float(raw) if raw is not None else None

    def _snapshot(self) -> dict:
        return {
            "wall": time.monotonic(),
            "cpu": {k: procstats.cpu_seconds(p) for k, p in self.pids.items()},
            "loadgen": _children_cpu_s(),
            "machine": _machine_jiffies(),
            "model_s": self._model_s(),
        }

    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()
        self._start = self._snapshot()

    def finish(self, jobs: int) -> dict:
        """Keys `redis_cost` (see RedisCost.to_dict), `cpu_cores` (name → cores used), `model_busy`."""
        if self._start is None:
            raise RuntimeError("PhaseMeter.finish() called before start()")
        before, after = self._start, self._snapshot()
        wall = max(after["wall"] - before["wall"], 1e-9)
        cores = {k: (after["cpu"][k] - before["cpu"][k]) / wall for k in self.pids}
        cores["loadgen"] = (after["loadgen"] - before["loadgen"]) / wall
        total, idle = (a - b for a, b in zip(after["machine"], before["machine"]))
        ticks = os.sysconf("SC_CLK_TCK")
        if total > 0:
            cores["idle"] = idle / ticks / wall
            cores["other"] = max(0.0, (total - idle) / ticks / wall - sum(v for k, v in cores.items() if k != "idle"))
        out: dict = {"cpu_cores": cores, "wall_s": wall}
        if self.redis is not None:
            out["redis_cost"] = self.redis.finish(jobs).to_dict()
        if before["model_s"] is not None and after["model_s"] is not None:
            out["model_busy"] = (after["model_s"] - before["model_s"]) / wall
        return out
