"""The pure part of version changes (TF Serving's availability-preserving policy): from the versions the
source aspires to and the versions in hand, which to load and which to unload. No I/O, no TensorFlow.

- Every aspired version not in hand (or unloaded earlier) is loaded. One that failed is not retried while it
  stays aspired; once its directory goes, it is forgotten and may be tried again when it comes back.
- A version no longer aspired is unloaded only while an aspired version is AVAILABLE: a new version that is
  still loading, or failed to load, never leaves the model without a version that answers. Until then the
  newest version in hand keeps serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from shared.model_registry import VersionState, version_order


class Step(str, Enum):
    LOAD = "load"
    UNLOAD = "unload"
    FORGET = "forget"  # drop a failed version that is no longer aspired (it may be tried again if it returns)


@dataclass(frozen=True)
class Action:
    step: Step
    version: str


@dataclass(frozen=True)
class InHand:
    """What the manager knows of one version: its state, and whether its load failed."""

    state: VersionState
    failed: bool = False


def plan(aspired: set[str], in_hand: Mapping[str, InHand]) -> list[Action]:
    """The loads, then the unloads, that bring `in_hand` towards `aspired` without losing availability."""
    to_load = [
        v for v in aspired if v not in in_hand or (in_hand[v].state is VersionState.END and not in_hand[v].failed)
    ]
    actions = [Action(Step.LOAD, v) for v in sorted(to_load, key=version_order)]
    available = [v for v, h in in_hand.items() if h.state is VersionState.AVAILABLE]
    if any(v in aspired for v in available):
        keep: set[str] = set()
    else:  # nothing aspired answers yet: the newest version in hand stays until one does
        keep = set(sorted(available, key=version_order)[-1:])
    for version, held in sorted(in_hand.items(), key=lambda item: version_order(item[0])):
        if version in aspired:
            continue
        if held.state is VersionState.AVAILABLE and version not in keep:
            actions.append(Action(Step.UNLOAD, version))
        elif held.failed:
            actions.append(Action(Step.FORGET, version))
    return actions
