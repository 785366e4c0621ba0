"""KServe v2 (Open Inference Protocol) tensors: request bodies in, response bodies out, JSON or binary.

Binary tensor data extension: a body may be a JSON header of `Inference-Header-Content-Length` bytes
followed by raw little-endian tensors, one per input whose `parameters.binary_data_size` says its length,
in input order; outputs asked for with `binary_data` (or `binary_data_output` on the request) are sent
the same way. Every tensor is checked as /predict rows are (api/validation.py) before anything is queued.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from api.model_info import ModelInfo, ModelNotServed, Served
from api.validation import check_booleans, loads_json, may_hold_booleans, to_array
from shared.errors import InvalidInput, NotFound
from shared.signature import ModelRef, ModelSignature, TensorSpec

# v2 datatype ↔ numpy dtype name; BYTES (strings) and BF16 are not served.
DATATYPES = {
    "BOOL": "bool",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
}
DATATYPE_OF = {dtype: name for name, dtype in DATATYPES.items()}


@dataclass
class InferRequest:
    """A checked infer request: model-typed input arrays and what to send back, and how."""

    id: str | None
    arrays: dict[str, np.ndarray]
    outputs: list[tuple[str, bool]]  # (output name, as binary)
    parameters: dict[str, Any] = field(default_factory=dict)


def datatype(dtype: str) -> str:
    """The v2 datatype of a numpy/TF dtype name (BYTES for strings)."""
    return DATATYPE_OF.get(dtype, "BYTES")


def tensor_metadata(spec: TensorSpec) -> dict[str, Any]:
    """{"name", "datatype", "shape"} with -1 for the batch dimension and any other free dimension."""
    return {
        "name": spec.name,
        "datatype": datatype(spec.dtype),
        "shape": [-1, *(-1 if d is None else d for d in spec.shape)],
    }


OPTIONAL_FIELDS = {"id": "a string", "outputs": "a list of {name}", "parameters": "an object"}


def parse_request(body: bytes, header_length: str | None, signature: ModelSignature, max_rows: int) -> InferRequest:
    """Check an infer request against the signature and convert its inputs to the model's dtypes."""
    json_part, binary = _split(body, header_length)
    doc = loads_json(json_part)
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise InvalidInput(
            "the request must be a JSON object with a non-empty 'inputs' list",
            field="inputs",
            expected='{"inputs": [{"name", "shape", "datatype", "data"}, ...]}',
        )
    _refuse_nulls(doc)
    maybe_booleans = may_hold_booleans(json_part)
    specs = {t.name: t for t in signature.inputs}
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for i, tensor in enumerate(doc["inputs"]):
        name, array, offset = _input(i, tensor, binary, offset, maybe_booleans)
        if name not in specs or name in arrays:
            raise InvalidInput(
                f"unexpected or repeated input {name!r}",
                field=f"inputs[{i}].name",
                expected="each of " + ", ".join(repr(n) for n in specs) + " once",
            )
        arrays[name] = to_array(array, specs[name], f"inputs[{i}]")
    if offset != len(binary):
        raise InvalidInput(
            f"{len(binary) - offset} bytes of binary data follow the JSON header but no input claims them",
            expected="binary_data_size of the inputs adding up to the bytes after the header",
        )
    missing = [n for n in specs if n not in arrays]
    if missing:
        raise InvalidInput(f"missing input(s) {missing}", field="inputs", expected=f"inputs {list(specs)}")
    rows = {len(a) for a in arrays.values()}
    if len(rows) > 1 or not 1 <= min(rows) <= max_rows:
        raise InvalidInput(
            f"inputs have {sorted(rows)} rows",
            field="inputs",
            expected=f"the same batch size, 1 to {max_rows} (MAX_ROWS_PER_REQUEST), for every input",
        )
    parameters = _parameters(doc, "parameters")
    return InferRequest(_request_id(doc), arrays, _outputs(doc, signature, parameters), parameters)


def _parameters(holder: dict[str, Any], where: str) -> dict[str, Any]:
    """The `parameters` object of a request, input or output ({} when absent; an explicit null is refused,
    as the protocol's schema and our OpenAPI document say it is an object)."""
    if "parameters" not in holder:
        return {}
    value = holder["parameters"]
    if not isinstance(value, dict):
        raise InvalidInput("parameters must be an object", field=where, expected='{"name": value, ...}')
    return value


def _flag(parameters: dict[str, Any], name: str, default: bool, where: str) -> bool:
    """A boolean parameter (binary_data, binary_data_output)."""
    value = parameters.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be true or false", field=f"{where}.{name}", expected="true or false")
    return value


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        size = int(header_length)
    except ValueError:
        size = -1
    if not 0 < size <= len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length {header_length[:32]!r} does not fit a body of {len(body)} bytes",
            field="Inference-Header-Content-Length",
            expected="the byte length of the JSON header",
        )
    return body[:size], body[size:]


def _input(i: int, tensor: Any, binary: bytes, offset: int, maybe_booleans: bool) -> tuple[str, np.ndarray, int]:
    """One input tensor as an array of its declared datatype and shape; returns the new binary offset.
    `maybe_booleans`: False when the JSON cannot hold a true/false (`may_hold_booleans`)."""
    where = f"inputs[{i}]"
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise InvalidInput(
            "an input must be an object with a name", field=where, expected='{"name", "shape", "datatype", "data"}'
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(type(d) is int and d >= 0 for d in shape):  # no bools
        raise InvalidInput(
            f"shape {shape!r} is not valid", field=f"{where}.shape", expected="a list of sizes ≥ 0, batch size first"
        )
    declared = tensor.get("datatype")
    dtype = DATATYPES.get(declared) if isinstance(declared, str) else None  # a dict or list would not hash
    if dtype is None:
        raise InvalidInput(
            f"datatype {str(tensor.get('datatype'))[:16]!r} is not served",
            field=f"{where}.datatype",
            expected=", ".join(DATATYPES),
        )
    count = int(np.prod(shape))
    size = _parameters(tensor, f"{where}.parameters").get("binary_data_size")
    if size is not None:
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or size != count * np.dtype(dtype).itemsize
            or offset + size > len(binary)
        ):
            raise InvalidInput(
                f"binary_data_size {size!r} does not fit shape {shape} of {tensor['datatype']} "
                f"or the {len(binary) - offset} bytes left",
                field=f"{where}.parameters.binary_data_size",
                expected=f"{count * np.dtype(dtype).itemsize} bytes",
            )
        flat = np.frombuffer(binary, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=offset)
        return tensor["name"], flat.astype(dtype).reshape(shape), offset + size
    if "data" not in tensor:
        raise InvalidInput(
            "an input needs 'data' or parameters.binary_data_size",
            field=where,
            expected="data: a flat or nested list of values in row-major order",
        )
    values = _typed(tensor["data"], dtype, f"{where}.data", maybe_booleans)
    if values.size != count:
        raise InvalidInput(
            f"data holds {values.size} values for shape {shape}", field=f"{where}.data", expected=f"{count} values"
        )
    return tensor["name"], values.reshape(shape), offset


def _typed(data: Any, dtype: str, where: str, maybe_booleans: bool) -> np.ndarray:
    """JSON values as a flat array of the declared datatype: booleans for BOOL, integers for INT/UINT."""
    try:
        raw = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raw = None
    kinds = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[np.dtype(dtype).kind]
    if raw is None or raw.dtype.kind not in kinds:
        raise InvalidInput(
            "data is ragged or holds values of the wrong type",
            field=where,
            expected=f"{'booleans' if dtype == 'bool' else dtype + ' values'} in a flat or nested list",
        )
    check_booleans(data, raw, dtype, where, maybe_booleans)
    return to_array(raw.reshape(-1, 1), TensorSpec("data", (1,), dtype), where).reshape(-1)


def _refuse_nulls(doc: dict[str, Any]) -> None:
    """Optional request fields may be left out, not sent as null (their schemas say string, list, object)."""
    for name in OPTIONAL_FIELDS:
        if name in doc and doc[name] is None:
            raise InvalidInput(f"{name} is null", field=name, expected=f"{name} left out, or {OPTIONAL_FIELDS[name]}")


def _request_id(doc: dict[str, Any]) -> str | None:
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise InvalidInput("id must be a string", field="id", expected="a string, echoed on the response")
    return rid[:256] if rid is not None else None


def _outputs(doc: dict[str, Any], signature: ModelSignature, parameters: dict[str, Any]) -> list[tuple[str, bool]]:
    """The outputs to return (all, unless the request names some) and whether each goes as binary."""
    binary_default = _flag(parameters, "binary_data_output", False, "parameters")
    names = [t.name for t in signature.outputs]
    wanted = doc.get("outputs")
    if wanted is None:
        return [(n, binary_default) for n in names]
    if not isinstance(wanted, list) or not all(isinstance(o, dict) and o.get("name") in names for o in wanted):
        raise InvalidInput(
            "'outputs' must name outputs of the model",
            field="outputs",
            expected=f'a list of {{"name"}} objects, names among {names}',
        )
    return [
        (
            o["name"],
            _flag(
                _parameters(o, f"outputs[{i}].parameters"), "binary_data", binary_default, f"outputs[{i}].parameters"
            ),
        )
        for i, o in enumerate(wanted)
    ]


def render_response(
    request: InferRequest, outputs: dict[str, list[Any]], signature: ModelSignature, model: ModelRef
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary outputs follow it (else None)."""
    dtypes = {t.name: t.dtype for t in signature.outputs}
    entries, blobs = [], []
    for name, binary in request.outputs:
        array = np.asarray(outputs[name], dtype=dtypes[name])
        entry: dict[str, Any] = {"name": name, "datatype": datatype(array.dtype.name), "shape": list(array.shape)}
        if binary:
            blob = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = np.ascontiguousarray(array).reshape(-1)
        entries.append(entry)
    body: dict[str, Any] = {"model_name": model.name, "model_version": model.version, "outputs": entries}
    if request.id is not None:
        body["id"] = request.id
    header = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def resolve(model_info: ModelInfo, name: str, version: str | None) -> Served:
    """The model version a KServe v2 request names (no version: the newest), in KServe's "unknown model" words."""
    try:
        return model_info.resolve(name, version or None)
    except ModelNotServed as exc:
        which = f" version {version}" if version else ""
        raise NotFound(
            f"Request for unknown model: '{name}'{which} is not found (this server serves {', '.join(exc.served)})"
        ) from None
