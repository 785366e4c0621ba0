"""`make fuzz`: Schemathesis, driven by /openapi.json, against a real stack of our own (embedded Redis, the
API under granian, one worker), with every check on (schemathesis.toml): no 5xx, no status code, content type
or header the document does not list, no response body that breaks its schema, schema-valid requests
accepted and schema-violating ones refused, and Allow headers that match the document.

`python -m scripts.fuzz [--examples N] [--seed S] [--min-cases C]` prints the command, the number of
generated cases and the failures, and exits 1 if any check failed or fewer than C cases ran.
tests/e2e/test_openapi_fuzz.py calls `run_schemathesis` with a small budget as part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scripts.harness import Harness, own_stack_settings
from shared.config import PROJECT_ROOT

CONFIG = Path(PROJECT_ROOT) / "schemathesis.toml"


@dataclass(frozen=True)
class FuzzResult:
    """What one Schemathesis run did: its exit code, generated cases, and the failures it reported."""

    command: list[str]
    returncode: int
    cases: int
    failures: list[str]
    output: str


def schemathesis_command(base_url: str, examples: int, seed: int, report: Path) -> list[str]:
    """The CLI command (config from schemathesis.toml: every check, one worker)."""
    return [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]


def run_schemathesis(base_url: str, examples: int, seed: int, timeout_s: float = 3600) -> FuzzResult:
    """Run Schemathesis against the service at `base_url` and read its JSON report."""
    with tempfile.TemporaryDirectory(prefix="fuzz-report-") as tmp:
        report = Path(tmp) / "report.json"
        command = schemathesis_command(base_url, examples, seed, report)
        done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout_s, check=False)
        summary = json.loads(report.read_text()) if report.exists() else {}
    cases = summary.get("test_cases", {}).get("generated", 0)
    failures = [f"{f.get('title', f)}" if isinstance(f, dict) else str(f) for f in summary.get("failures", [])]
    return FuzzResult(command, done.returncode, cases, failures, done.stdout + done.stderr)


def _start_stack(data_dir: Path) -> Harness:
    """Embedded Redis, the API and one worker on free loopback ports, from the harness; ready when returned."""
    # WEBHOOK_MAX_ATTEMPTS=1: generated callback URLs point nowhere; one failed delivery each is enough.
    settings = own_stack_settings(
        str(data_dir),
        workers=1,
        api_keys="",
        webhook_max_attempts=1,
    )
    (data_dir / "logs").mkdir()
    harness = Harness(settings, data_dir / "logs")
    try:
        harness.start_redis()
        harness.start_api(wait_s=None)
        harness.start_worker()
        harness.wait_ready(180)
    except BaseException:
        harness.stop()
        raise
    return harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=500, help="most cases per operation and phase (default 500)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-cases", type=int, default=10_000, help="fail if fewer cases ran (default 10000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        harness = _start_stack(Path(tmp))
        try:
            print(f"fuzz: stack at {harness.base_url}; logs in {tmp}/logs while it runs", flush=True)
            result = run_schemathesis(harness.base_url, args.examples, args.seed)
        finally:
            harness.stop()
    print(result.output[-6000:])
    print("command: " + " ".join(result.command[1:]).replace("-m schemathesis.cli", "schemathesis", 1))
    print(f"fuzz: {result.cases} cases generated, {len(result.failures)} failures, exit code {result.returncode}")
    if result.cases < args.min_cases:
        print(f"fuzz: fewer than {args.min_cases} cases: raise --examples")
        return 1
    return 0 if result.returncode == 0 and not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())
