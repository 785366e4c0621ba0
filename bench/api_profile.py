"""Where the API's CPU per request goes: the service under 64 closed-loop `?wait` clients (light model), its
API's CPU per request from /proc, and a py-spy profile of the API processes counting only samples that
hold the GIL (time spent running Python or C called from it), summed per function.

py-spy is a profiler, not a dependency of the service: install it into the environment that runs this
(`pip install py-spy`); without it only the CPU per request is printed.

    python -m bench.api_profile [--server granian|gunicorn] [--rows 1] [--route predict] [--seconds 15] [--top 40]

Routes: those of bench/ceiling.py (predict, "http tfserving", "http kserve", "http kserve binary").
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import procstats
from bench.ceiling import bodies
from scripts.harness import Harness, free_port
from shared.config import PROJECT_ROOT, Settings

LIGHT_PATH = os.path.join(PROJECT_ROOT, "models", "digits.keras")
CLIENTS = 64


def shares(collapsed: str, top: int) -> list[tuple[float, str]]:
    """(share of samples, function) for the `top` functions by inclusive samples, from py-spy's raw output."""
    inclusive: collections.Counter = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        # Function frames read "name (file:line)"; the process frame (its command line may hold ";") does not.
        frames = {re.sub(r":\d+\)$", ")", f) for f in stack.split(";") if f.endswith(")")}
        total += int(count)
        for frame in frames:
            inclusive[frame] += int(count)
    return [(n / total, f) for f, n in inclusive.most_common(top)] if total else []


def profile(server: str, rows: int, route: str, seconds: float, workdir: str) -> tuple[float, str | None]:
    """The API's CPU ms per request, and py-spy's collapsed stacks (None without py-spy)."""
    from bench.run import load

    settings = Settings.from_env({}).replace(
        redis_port=free_port(),
        api_port=free_port(),
        grpc_port=0,
        model_path=LIGHT_PATH,
        model_name="light",
        log_level="INFO",  # the access log is part of what a request costs
        api_server=server,
        data_dir=os.path.join(workdir, "data"),
    )
    service = Harness(settings, Path(workdir))  # the access log goes to a file, as in production
    service.start_redis()
    api = service.start_api(wait_s=None)
    service.start_worker()
    path, body, headers = bodies("light", rows)[route]
    body_file = os.path.join(workdir, "body.json")
    with open(body_file, "wb") as f:
        f.write(body)
    spy_out = os.path.join(workdir, "api.txt")
    try:
        service.wait_ready(180)
        load(service.base_url, "wait", 8, body_file, seconds=1.0)  # warm every API process
        spy = shutil.which("py-spy")
        recorder = None
        if spy:
            command = [spy, "record", "--nonblocking", "--gil", "--subprocesses", "--format", "raw", "--rate", "200"]
            command += ["-o", spy_out, "--pid", str(api.pid), "--duration", str(int(seconds))]
            recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = procstats.cpu_seconds(api.pid)
        result = load(service.base_url, "wait", CLIENTS, body_file, seconds=seconds, path=path, headers=headers)
        used = procstats.cpu_seconds(api.pid) - before
        if recorder is not None:
            recorder.wait(60)
    finally:
        service.stop()
    collapsed = Path(spy_out).read_text() if os.path.exists(spy_out) else None
    return used * 1000 / max(result["jobs"], 1), collapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", choices=("granian", "gunicorn"), default="granian")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--route", choices=tuple(bodies("light", 1)), default="predict")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        ms, collapsed = profile(args.server, args.rows, args.route, args.seconds, workdir)
    print(f"API CPU per {args.rows}-row {args.route} request under {args.server}, {CLIENTS} clients: {ms:.3f} ms")
    if collapsed is None:
        print("(no profile: py-spy is not installed)")
    for share, function in shares(collapsed or "", args.top):
        print(f"{share:6.1%}  {function}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
