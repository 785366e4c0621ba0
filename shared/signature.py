"""The model's signature (named input and output tensors) as the worker publishes it and the API reads it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: its per-row shape (no batch dimension; None for any size) and dtype name."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TensorSpec":
        return cls(name=str(data["name"]), shape=tuple(data["shape"]), dtype=str(data["dtype"]))

    def describe(self) -> str:
        """The shape of one row for people, e.g. `[64] float32`."""
        dims = ", ".join("*" if d is None else str(d) for d in self.shape)
        return f"[{dims}] {self.dtype}"


@dataclass(frozen=True)
class ModelSignature:
    """What a loaded model takes and gives, plus the name and version reported on results."""

    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> "ModelSignature":
        data = orjson.loads(raw)
        return cls(
            name=data["name"],
            version=str(data["version"]),
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
        )

    @property
    def model_ref(self) -> dict[str, str]:
        """The {name, version} object reported on every result."""
        return {"name": self.name, "version": self.version}
