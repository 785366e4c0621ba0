"""The model's signatures (named input and output tensors) as the worker advertises them and the API reads them.

A model has a default signature (`serving_default`), whose tensors are `ModelSignature.inputs/outputs`, and
for SavedModels possibly more (TF Serving's classify and regress signatures, other predict signatures),
listed in `ModelSignature.signatures` with the SignatureDef exactly as TF Serving renders it in JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import orjson

DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DT_NAMES = {
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "bfloat16": "DT_BFLOAT16",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "bool": "DT_BOOL",
    "string": "DT_STRING",
}


@dataclass(frozen=True)
class TensorSpec:
    """One named tensor: its per-row shape (no batch dimension; None for any size) and dtype name.

    dtype "string" is a tensor of byte strings (serialized tf.Example protos for classify and regress).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TensorSpec:
        return cls(name=str(data["name"]), shape=tuple(data["shape"]), dtype=str(data["dtype"]))

    @property
    def static_shape(self) -> tuple[int, ...] | None:
        """The per-row shape if every dimension is fixed, else None."""
        dims = tuple(d for d in self.shape if d is not None)
        return dims if len(dims) == len(self.shape) else None

    def describe(self) -> str:
        """The shape of one row for people, e.g. `[64] float32`."""
        dims = ", ".join("*" if d is None else str(d) for d in self.shape)
        return f"[{dims}] {self.dtype}"


@dataclass(frozen=True)
class SignatureDef:
    """One named signature: its method, tensors, and the SignatureDef in TF Serving's JSON shape."""

    name: str
    method: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    tf_json: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SignatureDef:
        return cls(
            name=str(data["name"]),
            method=str(data["method"]),
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            tf_json=dict(data["tf_json"]),
        )


@dataclass(frozen=True)
class ModelRef:
    """The model that made a result: the {name, version} object on every result document."""

    name: str
    version: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelRef:
        return cls(str(data["name"]), str(data["version"]))


@dataclass(frozen=True)
class ModelSignature:
    """What a loaded model takes and gives (its default signature), plus the name and version reported on
    results, and every signature of the model (the default one included)."""

    name: str
    version: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    signatures: tuple[SignatureDef, ...] = ()

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> ModelSignature:
        data = orjson.loads(raw)
        return cls(
            name=data["name"],
            version=str(data["version"]),
            inputs=tuple(TensorSpec.from_dict(t) for t in data["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in data["outputs"]),
            signatures=tuple(SignatureDef.from_dict(s) for s in data.get("signatures", ())),
        )

    @property
    def model_ref(self) -> ModelRef:
        """The model reported on every result."""
        return ModelRef(self.name, self.version)

    def signature_defs(self) -> dict[str, SignatureDef]:
        """Every signature by name (a model advertised without them has its default one only)."""
        if self.signatures:
            return {s.name: s for s in self.signatures}
        return {DEFAULT_SIGNATURE: default_signature_def(self.inputs, self.outputs)}

    def select(self, signature_name: str) -> ModelSignature:
        """This model seen through another of its signatures (raises KeyError for an unknown name)."""
        chosen = self.signature_defs()[signature_name]
        return replace(self, inputs=chosen.inputs, outputs=chosen.outputs)


def default_signature_def(
    inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], name: str = DEFAULT_SIGNATURE
) -> SignatureDef:
    """A predict signature for a model with no SignatureDef of its own (Keras files): tensor names `<name>:0`."""
    tf_json = {
        "inputs": {t.name: tensor_info_json(t) for t in inputs},
        "outputs": {t.name: tensor_info_json(t) for t in outputs},
        "method_name": PREDICT_METHOD,
        "defaults": {},
    }
    return SignatureDef(name, PREDICT_METHOD, inputs, outputs, tf_json)


def tensor_info_json(spec: TensorSpec) -> dict[str, Any]:
    """A TensorInfo as TF Serving renders it in JSON (int64 sizes as strings, -1 for any size)."""
    dims = [-1, *(-1 if d is None else d for d in spec.shape)]
    return {
        "dtype": DT_NAMES.get(spec.dtype, "DT_INVALID"),
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in dims], "unknown_rank": False},
        "name": f"{spec.name}:0",
    }
