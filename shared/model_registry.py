"""What each worker serves, as it advertises it and the API reads it: models, their queues, labels, and every
version with its state (TF Serving's START, LOADING, AVAILABLE, UNLOADING, END), error and signature.

Each worker writes one document (a field of `keys.model_registry()`, by worker name); the API merges the
documents of the live workers (`merge`), so it learns the served models without reading the model config
itself (it has no TensorFlow). No TensorFlow here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

from shared.signature import ModelSignature


class VersionState(str, Enum):
    """A version's state as TF Serving's GetModelStatus reports it; a failed load ends in END with an error."""

    START = "START"
    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    UNLOADING = "UNLOADING"
    END = "END"


# When workers disagree (one still loading what another serves), the model's status shows the best state.
_RANK = {VersionState.AVAILABLE: 4, VersionState.LOADING: 3, VersionState.UNLOADING: 2, VersionState.START: 1}


@dataclass(frozen=True)
class VersionStatus:
    """One version of a model on a worker (or, merged, on the best worker)."""

    version: str
    state: VersionState
    error: str = ""  # why its load failed ("" for none)
    signature: ModelSignature | None = None  # set once it is AVAILABLE

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"version": self.version, "state": self.state.value, "error": self.error}
        if self.signature is not None:
            doc["signature"] = orjson.loads(self.signature.to_json())
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionStatus:
        signature = data.get("signature")
        return cls(
            version=str(data["version"]),
            state=VersionState(data["state"]),
            error=str(data.get("error", "")),
            signature=ModelSignature.from_json(orjson.dumps(signature)) if signature else None,
        )


@dataclass(frozen=True)
class ModelStatus:
    """One served model: its queues (interactive, bulk), version labels and versions by version string."""

    name: str
    queue: str
    bulk_queue: str
    labels: dict[str, str] = field(default_factory=dict)
    versions: dict[str, VersionStatus] = field(default_factory=dict)

    def available(self) -> list[str]:
        """Versions AVAILABLE now, newest (highest number) first."""
        found = [v for v, s in self.versions.items() if s.state is VersionState.AVAILABLE]
        return sorted(found, key=version_order, reverse=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "bulk_queue": self.bulk_queue,
            "labels": self.labels,
            "versions": [s.to_dict() for s in self.versions.values()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelStatus:
        versions = (VersionStatus.from_dict(v) for v in data.get("versions", ()))
        return cls(
            name=str(data["name"]),
            queue=str(data["queue"]),
            bulk_queue=str(data["bulk_queue"]),
            labels={str(k): str(v) for k, v in dict(data.get("labels", {})).items()},
            versions={v.version: v for v in versions},
        )


def version_order(version: str) -> tuple[int, str]:
    """Sort key: numbered versions by number, after any that are not numbers."""
    return (int(version), "") if version.isdigit() else (-1, version)


def model_queues(queue_name: str, bulk_queue_name: str, model: str, first: bool) -> tuple[str, str]:
    """A model's interactive and bulk queue: QUEUE_NAME and BULK_QUEUE_NAME for the first model served (so a
    one-model deployment keeps its queues), `<QUEUE_NAME>-<model>` and `<BULK_QUEUE_NAME>-<model>` for others."""
    if first:
        return queue_name, bulk_queue_name
    return f"{queue_name}-{model}", f"{bulk_queue_name}-{model}"


def encode(models: Iterable[ModelStatus], batching: dict[str, Any]) -> bytes:
    """One worker's registry document."""
    return orjson.dumps({"models": [m.to_dict() for m in models], "batching": batching})


def decode(raw: bytes | str) -> tuple[list[ModelStatus], dict[str, Any]]:
    """A worker's registry document: its models and its batching settings."""
    data = orjson.loads(raw)
    return [ModelStatus.from_dict(m) for m in data.get("models", ())], dict(data.get("batching", {}))


def merge(documents: Iterable[list[ModelStatus]]) -> dict[str, ModelStatus]:
    """The models of several workers by name, each version in the best state any worker has it in (an error
    is kept from a worker whose load failed, when no worker has the version in a better state)."""
    merged: dict[str, ModelStatus] = {}
    for models in documents:
        for model in models:
            seen = merged.setdefault(model.name, ModelStatus(model.name, model.queue, model.bulk_queue, model.labels))
            for version, status in model.versions.items():
                current = seen.versions.get(version)
                if current is None or _RANK.get(status.state, 0) > _RANK.get(current.state, 0):
                    seen.versions[version] = status
    return merged
