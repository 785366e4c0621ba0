"""The rollout drill: traffic on a model while new version directories appear, a broken version appears and
old version directories are removed. The model answers its version number, so a wrong-version answer shows
in the value itself. Run by `make soak` (`python -m scripts.rollout_drill`, ROLLOUT_VERSIONS new versions,
default 5) and, short, by tests/e2e/test_rollout.py.

Each job is unversioned (the newest version when claimed) or pinned to the newest version that has
answered so far (so pinned jobs cross every change). Outcomes: answered (by the right version), refused (a pinned version not served any more, 404 at
submit), failed_clearly (pinned, gone when claimed: `version_unavailable`), lost (no answer: must be 0),
wrong_version (must be 0), failed_otherwise (must be 0).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from scripts.harness import Harness, own_stack_settings
from scripts.model_versions import add_broken_version, add_constant_version, write_config

MODEL = "constant"
CLIENTS = 4  # three unversioned, one pinned
STEP_TIMEOUT_S = 120.0


@dataclass
class Tally:
    """What the traffic saw; `versions` counts answers per version, `first` when each version first answered."""

    counts: Counter = field(default_factory=Counter)
    versions: Counter = field(default_factory=Counter)
    first: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: str, version: str | None = None) -> None:
        with self.lock:
            self.counts[outcome] += 1
            if version is not None:
                self.versions[version] += 1
                self.first.setdefault(version, time.monotonic())

    @property
    def clean(self) -> bool:
        return not (self.counts["lost"] or self.counts["wrong_version"] or self.counts["failed_otherwise"])


def one_job(client: httpx.Client, pinned: str | None, tally: Tally) -> None:
    """One job, unversioned or pinned to `pinned`; classify how it ended."""
    query = "&version=" + pinned if pinned else ""
    try:
        response = client.post(f"/predict?wait=30&model={MODEL}{query}", json={"instances": [[0.0]]})
    except httpx.HTTPError:
        tally.add("lost")
        return
    if response.status_code == 404 and pinned:  # refused at submit: that version is not served any more
        tally.add("refused")
        return
    doc = response.json()
    if response.status_code != 200 or doc.get("status") not in ("finished", "failed"):
        tally.add("lost")
        return
    if doc["status"] == "failed":
        tally.add("failed_clearly" if doc["error"]["code"] == "version_unavailable" else "failed_otherwise")
        return
    version = doc["model"]["version"]
    wrong = doc["predictions"] != [[float(version)]] or (pinned is not None and version != pinned)
    tally.add("wrong_version" if wrong else "answered", version)


def wait_for(condition: object, timeout_s: float = STEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"the drill waited {timeout_s:g} s for a step")
        time.sleep(0.05)


def version_state(client: httpx.Client, version: str) -> tuple[str, str]:
    """A version's state and error as GET /v1/models/<name> reports it (("", "") while it is not listed)."""
    listed = client.get(f"/v1/models/{MODEL}").json().get("model_version_status", [])
    found = next((v for v in listed if v["version"] == version), None)
    return (found["state"], found["status"]["error_message"]) if found else ("", "")


def drill(base_url: str, base: Path, new_versions: int, answers_per_step: int = 20) -> tuple[Tally, list[float]]:
    """Traffic on MODEL (served from `base`, holding version 1) while versions 2..1+new_versions appear in turn,
    then a broken one; each step removes the directory of the version before. Returns the tally and the
    seconds from each new directory to its first answer."""
    tally, stop, delays = Tally(), threading.Event(), []

    def traffic(pin: bool) -> None:
        with httpx.Client(base_url=base_url, timeout=60) as client:
            while not stop.is_set():
                seen = list(tally.first)
                one_job(client, max(seen, key=int) if pin and seen else None, tally)

    with ThreadPoolExecutor(CLIENTS) as pool, httpx.Client(base_url=base_url, timeout=30) as status:
        running = [pool.submit(traffic, pin) for pin in (False, False, False, True)]
        try:
            wait_for(lambda: tally.versions["1"] >= answers_per_step)
            for version in range(2, 2 + new_versions):
                appeared = time.monotonic()
                add_constant_version(base, version)
                wait_for(lambda v=str(version): v in tally.first)
                delays.append(tally.first[str(version)] - appeared)
                shutil.rmtree(base / str(version - 1))  # the old version's directory goes
                answered = tally.versions[str(version)]
                wait_for(lambda v=str(version), n=answered: tally.versions[v] >= n + answers_per_step)
            broken = str(2 + new_versions)
            add_broken_version(base, int(broken))
            wait_for(lambda: version_state(status, broken)[1])
            answered = sum(tally.versions.values())
            wait_for(lambda: sum(tally.versions.values()) >= answered + answers_per_step)
        finally:
            stop.set()
            for future in running:
                future.result()
    return tally, delays


def main() -> int:
    new_versions = int(os.environ.get("ROLLOUT_VERSIONS", "5"))
    with tempfile.TemporaryDirectory(prefix="rollout-") as tmp:
        root = Path(tmp)
        add_constant_version(root / MODEL, 1)
        config = write_config(root / "models.config", [(MODEL, root / MODEL, "")])
        settings = own_stack_settings(
            str(root),
            model_config_file=str(config),
            model_poll_s=0.2,
            api_keys="",
        )
        (root / "logs").mkdir()
        harness = Harness(settings, root / "logs")
        try:
            harness.start_redis()
            harness.start_api(wait_s=None)
            harness.start_worker()
            harness.wait_ready(180)
            tally, delays = drill(harness.base_url, root / MODEL, new_versions, answers_per_step=200)
        finally:
            harness.stop(timeout_s=20)
    print(f"rollout drill: {dict(tally.counts)}; answers per version {dict(sorted(tally.versions.items()))}")
    print("seconds from a version directory to its first answer: " + ", ".join(f"{d:.2f}" for d in delays))
    print("rollout drill: OK" if tally.clean else "rollout drill: FAILED")
    return 0 if tally.clean else 1


if __name__ == "__main__":
    sys.exit(main())
