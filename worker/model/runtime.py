"""TensorFlow's process-wide settings, applied once before the model loads: thread pools sized from the
container's CPU quota, and GPU memory that grows as needed.

In a container TensorFlow sizes its thread pools from the host's cores, not from the CPU quota: a worker
limited to 2 CPUs on a 64-core node starts 64 threads that the kernel then throttles. And on a GPU it
takes all the memory at start, so a second process on the same GPU fails. Both are fixed here, before
anything initialises the runtime (the settings cannot change afterwards).
"""

from __future__ import annotations

import logging
import math
import os

from shared.config import Settings

log = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"


def cpu_quota(root: str = CGROUP_ROOT) -> float | None:
    """CPUs this container may use per period (2.5 for a 2500m limit), or None when there is no quota.

    Reads cgroup v2 `cpu.max` ("<quota> <period>" or "max <period>"), else cgroup v1
    `cpu/cpu.cfs_quota_us` and `cpu/cpu.cfs_period_us` (quota -1: none).
    """
    v2 = _read(os.path.join(root, "cpu.max"))
    if v2 is not None:
        quota, _, period = v2.partition(" ")
        return None if quota == "max" else _ratio(quota, period)
    for folder in ("cpu", "cpu,cpuacct"):
        quota_v1 = _read(os.path.join(root, folder, "cpu.cfs_quota_us"))
        period_v1 = _read(os.path.join(root, folder, "cpu.cfs_period_us"))
        if quota_v1 is not None and period_v1 is not None:
            return None if quota_v1.startswith("-") else _ratio(quota_v1, period_v1)
    return None


def thread_count(settings: Settings, root: str = CGROUP_ROOT) -> int | None:
    """Threads per TensorFlow pool: TF_THREADS, else the CPU quota rounded up, else None (TF's default)."""
    if settings.tf_threads:
        return settings.tf_threads
    quota = cpu_quota(root)
    return None if quota is None else max(1, math.ceil(quota))


def configure(settings: Settings, root: str = CGROUP_ROOT) -> None:
    """Apply thread counts and GPU memory growth; call before the model loads."""
    import tensorflow as tf

    threads = thread_count(settings, root)
    if threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        log.info(
            "TensorFlow thread pools: %d threads each (%s)",
            threads,
            "TF_THREADS" if settings.tf_threads else "the container's CPU quota",
        )
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, settings.tf_gpu_memory_growth)
    if gpus:
        log.info("%d GPU(s); memory growth %s", len(gpus), "on" if settings.tf_gpu_memory_growth else "off")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None
