"""bench/ without running a benchmark: every module imports, the one load runner builds loadgen's command
and reads its result, and no bench module reaches into a private name of the service."""

from __future__ import annotations

import importlib
import os
import re
import sys

import pytest

from bench import load_runner
from tests.source_tree import python_files, read

# bench/baselines/ holds the comparison apps, started as their own processes with their own environment.
BENCH_MODULES = [
    path[:-3].replace(os.sep, ".")
    for path in python_files("bench")
    if not path.startswith(os.path.join("bench", "baselines"))
]


@pytest.mark.parametrize("module", BENCH_MODULES)
def test_every_bench_module_imports(module):
    importlib.import_module(module)


def test_the_load_runner_builds_loadgens_command_line():
    args = load_runner.command("http://127.0.0.1:1", "wait", 4, 2.5, "/tmp/body.json")
    assert args == [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        "http://127.0.0.1:1",
        "--mode",
        "wait",
        "--clients",
        "4",
        "--seconds",
        "2.5",
        "--body",
        "/tmp/body.json",
    ]
    assert load_runner.command("u", "wait", 1, 600, "b", stop_file="/tmp/stop")[-2:] == ["--stop-file", "/tmp/stop"]


def test_latency_percentiles_of_a_result_and_of_one_without_latencies():
    assert load_runner.percentiles({"latencies_ms": list(range(1, 101))})["p50_ms"] == pytest.approx(50.5)
    assert all(value != value for value in load_runner.percentiles({"latencies_ms": []}).values())  # NaN


def test_only_the_load_runner_starts_the_load_generator():
    starters = [path for path in python_files("bench") if '"bench.loadgen"' in read(path)]
    assert starters == [os.path.join("bench", "load_runner.py")]


def test_no_bench_module_uses_a_private_name_of_another_object():
    private = re.compile(r"""(?<![\w])(?!self\.|cls\.)\w+\._[a-z]\w*|wrap\([^)]*"_[a-z]""")
    offenders = {path: private.findall(read(path)) for path in python_files("bench")}
    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_bulk_rate_target_judges_the_batch_alone_and_the_p99_target_the_batch_with_traffic_alongside():
    from bench.report import targets

    raw = {"model": "light", "system": "raw", "mode": "batch 1024", "throughput": 100_000.0}
    common = {"model": "light", "system": "service", "rows": 1000, "elapsed_s": 1.0}
    alone = {**common, "mode": "bulk npy", "clients": 0, "throughput": 60_000.0}
    alongside = {
        **common,
        "mode": "bulk npy + interactive",
        "clients": 4,
        "throughput": 30_000.0,
        "p99_ms": 20.0,
        "interactive_idle_p99_ms": 10.0,
    }
    judged = {t["target"]: t["met"] for t in targets([raw, alone, alongside])}
    assert judged == {
        "bulk npy: ≥ 0.5 × raw limit at BATCH_CHUNK_ROWS, end to end": True,
        "bulk npy + interactive: rows/s × raw limit at BATCH_CHUNK_ROWS, for reference": None,
        "bulk npy + interactive: interactive p99 during the run ≤ 3 × idle": True,
    }
