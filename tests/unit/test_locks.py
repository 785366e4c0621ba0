"""The images' lock files (requirements-<role>.lock, written by scripts/lock_requirements.py) cover their
requirements: every pin of the role's requirements file is in its lock at the same version, every locked
package carries a SHA-256, and the Dockerfile installs each lock with --require-hashes."""

from __future__ import annotations

import os
import re

import pytest

from scripts.lock_requirements import ROLES
from shared.config import PROJECT_ROOT
from tests.unit.test_images import stages


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(name: str) -> dict[str, str]:
    """name → version of the `==` pins in a requirements file, following -r includes."""
    found: dict[str, str] = {}
    with open(os.path.join(PROJECT_ROOT, name)) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line.startswith("-r "):
                found |= pins(line[3:].strip())
            elif line:
                package, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", line).groups()
                found[normalize(package)] = version
    return found


def lock(role: str) -> dict[str, tuple[str, str]]:
    """name → (version, sha256) of a lock file."""
    with open(os.path.join(PROJECT_ROOT, f"requirements-{role}.lock")) as f:
        text = f.read()
    entries = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\\n\s+--hash=sha256:([0-9a-f]{64})$", text, flags=re.M)
    assert len(entries) == len(re.findall(r"^[A-Za-z0-9]", text, flags=re.M)), "a line without its hash"
    locked = {normalize(name): (version, digest) for name, version, digest in entries}
    assert len(locked) == len(entries), "a package locked twice"
    return locked


LOCKED_ROLES = [r for r in ROLES if os.path.exists(os.path.join(PROJECT_ROOT, f"requirements-{r}.lock"))]


@pytest.mark.parametrize("role", LOCKED_ROLES)
def test_every_pinned_requirement_is_locked_at_its_version_with_a_hash(role):
    wanted: dict[str, str] = {}
    for argument in ROLES[role]:
        if argument.endswith(".txt"):
            wanted |= pins(argument)
        elif "==" in argument:
            package, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(\S+)", argument).groups()
            wanted[normalize(package)] = version
    locked = lock(role)
    assert {name: locked.get(name, ("missing",))[0] for name in wanted} == wanted


@pytest.mark.parametrize("role", ["api", "grpc", "worker", "worker-gpu"])
def test_each_image_installs_its_lock_with_require_hashes(role):
    assert role in LOCKED_ROLES
    assert f"RUN pip install --require-hashes --no-deps -r requirements-{role}.lock" in stages()[role]
