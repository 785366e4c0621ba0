"""TF Serving's JSON examples (the `examples` of :classify and :regress) as serialized tf.Example protos.

The encoding is written out here (a tf.Example is three small protobuf messages) so that the API process
never imports TensorFlow. Value types follow TF Serving's REST API: a JSON number with a fraction or an
exponent is a float feature, an integer (or true/false) an int64 feature, a string or {"b64": ...} a bytes
feature; every value of a feature must be of one kind. Error messages are TF Serving's own.
"""

from __future__ import annotations

import base64
import binascii
import struct
from typing import Any

from shared.errors import InvalidInput

_BYTES, _FLOAT, _INT64 = 1, 2, 3  # the field numbers of Feature.bytes_list, float_list and int64_list
_KIND_NAMES = {_BYTES: "bytes", _FLOAT: "float", _INT64: "int64"}
_INT64_RANGE = (-(2**63), 2**63 - 1)


def json_type(value: Any) -> str:
    """The JSON type of a value as TF Serving names it in messages."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    names: dict[type, str] = {dict: "Object", list: "Array", str: "String"}
    return names.get(type(value), "Number")


def serialize_examples(examples: list[Any], context: dict[str, Any] | None = None) -> list[bytes]:
    """Each JSON example (an object of features) as a serialized tf.Example; `context` features are added
    to every example (an example's own feature of the same name wins)."""
    return [serialize_example({**(context or {}), **_object(example)}) for example in examples]


def serialize_example(features: dict[str, Any]) -> bytes:
    """One tf.Example: Example.features (1) -> Features.feature (1, a map of name -> Feature)."""
    entries = b"".join(
        _field(1, _field(1, name.encode()) + _field(2, _feature(name, value))) for name, value in features.items()
    )
    return _field(1, entries)


def _object(example: Any) -> dict[str, Any]:
    if not isinstance(example, dict):
        raise InvalidInput(f"Example must be JSON object but got JSON {json_type(example)}")
    return example


def _feature(name: str, content: Any) -> bytes:
    values = content if isinstance(content, list) else [content]
    kind = 0
    encoded: list[bytes] = []
    for value in values:
        value_kind, data = _value(name, value)
        if kind and value_kind != kind:
            raise InvalidInput(f"Unexpected element type in feature: {name} expecting type: {_KIND_NAMES[kind]}")
        kind = value_kind
        encoded.append(data)
    if not kind:
        return b""  # an empty list: a Feature with no kind set
    if kind == _BYTES:
        return _field(kind, b"".join(_field(1, v) for v in encoded))
    return _field(kind, _field(1, b"".join(encoded)))  # packed repeated values


def _value(name: str, value: Any) -> tuple[int, bytes]:
    if isinstance(value, bool):
        return _INT64, _varint(int(value))
    if isinstance(value, int):
        if not _INT64_RANGE[0] <= value <= _INT64_RANGE[1]:
            raise InvalidInput(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        return _INT64, _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return _FLOAT, struct.pack("<f", value)
    if isinstance(value, str):
        return _BYTES, value.encode()
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return _BYTES, base64.b64decode(value["b64"], validate=True)
        except binascii.Error:
            raise InvalidInput("Unable to base64 decode") from None
    raise InvalidInput(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
