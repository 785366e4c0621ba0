"""A real worker refreshes its liveness file every loop turn, and a stopped (hung) worker fails the check
that container runtimes run: `python -m worker.liveness`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from shared.config import PROJECT_ROOT
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def _check(path: str, max_age_s: float) -> int:
    env = {**os.environ, "PYTHONPATH": PROJECT_ROOT, "LIVENESS_FILE": path}
    return subprocess.run(
        [sys.executable, "-m", "worker.liveness", "--max-age-s", str(max_age_s)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        timeout=60,
    ).returncode


def test_a_running_worker_is_live_and_a_hung_one_is_not(make_service, tmp_path):
    path = str(tmp_path / "worker-alive")
    service = make_service(start_api=False, liveness_file=path)
    (worker,) = service.workers
    first = wait_until(lambda: os.path.exists(path) and os.stat(path).st_mtime, 30)
    wait_until(lambda: os.stat(path).st_mtime > first, 30)  # touched again on a later (idle) turn
    assert _check(path, 5) == 0
    service.signal_worker(worker, signal.SIGSTOP)  # as good as a model call that never returns
    try:
        wait_until(lambda: _check(path, 2) == 1, 30, 0.5)
    finally:
        service.signal_worker(worker, signal.SIGCONT)
    wait_until(lambda: _check(path, 2) == 0, 30, 0.5)
