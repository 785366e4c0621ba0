"""TensorFlow's thread pools follow the container's CPU quota (cgroup v2 or v1), read from fake cgroup files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shared.config import PROJECT_ROOT, Settings
from worker.model.runtime import cpu_quota, thread_count


def _v2(root, text):
    (root / "cpu.max").write_text(text + "\n")
    return str(root)


def _v1(root, quota, period, folder="cpu"):
    (root / folder).mkdir()
    (root / folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    return str(root)


@pytest.mark.parametrize(
    ("text", "cpus"), [("200000 100000", 2.0), ("250000 100000", 2.5), ("50000 100000", 0.5), ("max 100000", None)]
)
def test_cgroup_v2_cpu_max_gives_the_quota_in_cpus(tmp_path, text, cpus):
    assert cpu_quota(_v2(tmp_path, text)) == cpus


@pytest.mark.parametrize(("quota", "period", "cpus"), [(300000, 100000, 3.0), (-1, 100000, None)])
def test_cgroup_v1_cfs_files_give_the_quota_in_cpus(tmp_path, quota, period, cpus):
    assert cpu_quota(_v1(tmp_path, quota, period)) == cpus


def test_cgroup_v1_under_the_combined_cpu_cpuacct_folder_is_read_too(tmp_path):
    assert cpu_quota(_v1(tmp_path, 150000, 100000, folder="cpu,cpuacct")) == 1.5


def test_no_cgroup_files_means_no_quota(tmp_path):
    assert cpu_quota(str(tmp_path)) is None


def test_garbage_in_the_files_means_no_quota_rather_than_a_crash(tmp_path):
    assert cpu_quota(_v2(tmp_path, "lots 100000")) is None


def test_threads_are_the_quota_rounded_up_and_at_least_one(tmp_path):
    settings = Settings.from_env({})
    assert thread_count(settings, _v2(tmp_path, "250000 100000")) == 3
    assert thread_count(settings, _v2(tmp_path, "10000 100000")) == 1


def test_tf_threads_overrides_the_quota_and_no_quota_leaves_tensorflow_alone(tmp_path):
    assert thread_count(Settings.from_env({"TF_THREADS": "7"}), _v2(tmp_path, "200000 100000")) == 7
    assert thread_count(Settings.from_env({}), str(tmp_path / "nothing")) is None


def test_configure_sets_tensorflow_thread_pools_before_the_model_loads(tmp_path):
    root = _v2(tmp_path, "300000 100000")
    code = (
        "import tensorflow as tf; from shared.config import Settings; from worker.model import runtime as tf_runtime;"
        f"tf_runtime.configure(Settings.from_env({{}}), {root!r});"
        "print(tf.config.threading.get_intra_op_parallelism_threads(),"
        " tf.config.threading.get_inter_op_parallelism_threads())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": PROJECT_ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["3", "3"]
