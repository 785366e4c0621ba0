"""A rollout under load: traffic on a model while a new version directory appears, a broken version appears
and the old version's directory is removed. No accepted job is lost, none is answered by a version it was
not pinned to, and every answer's version matches its value (the test model answers its version number)."""

from __future__ import annotations

import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from tests.model_versions import add_broken_version, add_constant_version, write_config
from tests.support import wait_until

pytestmark = pytest.mark.e2e


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


def _one(client: httpx.Client, pinned: str | None, tally: Tally) -> None:
    """One job: unversioned, or pinned to `pinned`; classify how it ended."""
    query = "&version=" + pinned if pinned else ""
    try:
        response = client.post(f"/predict?wait=30&model=constant{query}", json={"instances": [[0.0]]})
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


def test_a_new_version_goes_live_under_load_with_no_job_lost_or_answered_by_the_wrong_version(make_service, tmp_path):
    base = tmp_path / "constant"
    add_constant_version(base, 1)
    config = write_config(tmp_path / "models.config", [("constant", base, "")])
    service = make_service(model_config_file=str(config), model_poll_s=0.2)
    tally, stop = Tally(), threading.Event()

    def traffic(pinned: str | None) -> None:
        with httpx.Client(base_url=service.base_url, timeout=60) as client:
            while not stop.is_set():
                _one(client, pinned, tally)

    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(traffic, pinned) for pinned in (None, None, None, "1")]
        wait_until(lambda: tally.versions["1"] >= 20, 60)
        appeared = time.monotonic()
        add_constant_version(base, 2)
        wait_until(lambda: "2" in tally.first, 60)
        to_first_answer = tally.first["2"] - appeared
        add_broken_version(base, 3)
        wait_until(lambda: _state(service, "3")[1], 30)
        shutil.rmtree(base / "1")
        answered = tally.versions["2"]
        wait_until(lambda: tally.versions["2"] >= answered + 20, 60)
        stop.set()
        for future in running:
            future.result()

    print(
        f"rollout drill: {dict(tally.counts)}, answers per version {dict(tally.versions)}, "
        f"{to_first_answer:.2f} s from the version directory to its first answer"
    )
    assert tally.counts["lost"] == 0 and tally.counts["failed_otherwise"] == 0
    assert tally.counts["wrong_version"] == 0
    assert _state(service, "2") == ("AVAILABLE", "")
    state, error = _state(service, "3")
    assert state == "END" and error, (state, error)  # the broken version's load error, in the status
    assert _state(service, "1")[0] == "END"


def _state(service, version: str) -> tuple[str, str]:
    """A version's state and error as GET /v1/models/<name> reports it (("", "") while it is not listed)."""
    listed = service.http.get("/v1/models/constant").json().get("model_version_status", [])
    found = next((v for v in listed if v["version"] == version), None)
    return (found["state"], found["status"]["error_message"]) if found else ("", "")
