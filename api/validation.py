"""Turn request bodies into typed input arrays checked against the model's signature, or raise InvalidInput.

Everything a worker will see is checked here: JSON syntax, shape, element type, finiteness, row count.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import Any

import numpy as np
import orjson

from shared.config import MAX_START_DEADLINE_S
from shared.errors import InvalidInput, UnsupportedMediaType
from shared.signature import ModelSignature, TensorSpec

_INT_KINDS = "iu"


def parse_json(body: bytes, content_type: str | None) -> Any:
    """Decode a JSON body; the content type must be JSON."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime != "application/json" and not mime.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type {mime or '(none)'!r} is not supported here",
            expected="Content-Type: application/json",
        )
    return loads_json(body)


def loads_json(body: bytes) -> Any:
    """Decode a JSON body whatever its content type (TF Serving's own curl examples send none)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}", expected="a JSON document") from None


def instances_from_body(doc: Any) -> list:
    """The rows of a /predict body: `{"instances": [...]}` or a bare JSON array of rows."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict) and "instances" in doc:
        if not isinstance(doc["instances"], list):
            raise InvalidInput("'instances' must be a list of rows", field="instances", expected="a JSON array of rows")
        return doc["instances"]
    raise InvalidInput(
        'request body must be {"instances": [row, ...]} or a JSON array of rows',
        field="instances",
        expected="a JSON array of rows",
    )


def start_deadline(doc: Any, query: str | None, default_s: float) -> float:
    """The job's deadline in seconds from now: the body's `timeout` (a JSON number), else `?timeout=`, else
    `default_s` (0: none). Both are checked when both are given."""
    from_query = _deadline_seconds(query, float) if query is not None else None
    if isinstance(doc, dict) and "timeout" in doc:
        return _deadline_seconds(doc["timeout"], lambda raw: float(raw) if type(raw) in (int, float) else -1.0)
    return default_s if from_query is None else from_query


def _deadline_seconds(raw: Any, to_float: Any) -> float:
    try:
        value = to_float(raw)
    except (ValueError, OverflowError):
        value = -1.0
    if not 0 < value <= MAX_START_DEADLINE_S:  # also rejects NaN
        raise InvalidInput(
            f"timeout={str(raw)[:32]!r} is not a valid start deadline",
            field="timeout",
            expected=f"seconds > 0, at most {MAX_START_DEADLINE_S:g} (a JSON number in the body)",
        )
    return value


def rows_to_arrays(
    instances: list, signature: ModelSignature, max_rows: int, maybe_booleans: bool = True
) -> dict[str, np.ndarray]:
    """Check `instances` against the signature and return one array per model input.

    For a model with one input each row is a (nested) list; with several, each row is an object keyed by
    input name (as in TF Serving, a one-input model also takes objects keyed by its input's name).
    `maybe_booleans`: False when the body cannot hold a true/false (`may_hold_booleans`), so that numeric
    rows are not walked for one.
    """
    _check_row_count(len(instances), max_rows, "instances")
    if len(signature.inputs) == 1 and not all(isinstance(row, dict) for row in instances):
        spec = signature.inputs[0]
        return {spec.name: to_array(instances, spec, "instances", maybe_booleans)}
    columns: dict[str, list] = {t.name: [] for t in signature.inputs}
    for i, row in enumerate(instances):
        if not isinstance(row, dict) or set(row) != set(columns):
            raise InvalidInput(
                f"row {i} must be an object with exactly the model's inputs",
                field=f"instances[{i}]",
                expected="{" + ", ".join(f'"{t.name}": {t.describe()}' for t in signature.inputs) + "}",
            )
        for name in columns:
            columns[name].append(row[name])
    return {t.name: to_array(columns[t.name], t, f"instances[*].{t.name}", maybe_booleans) for t in signature.inputs}


def columns_to_arrays(inputs: Any, signature: ModelSignature, max_rows: int) -> dict[str, np.ndarray]:
    """TF Serving's columnar format: `inputs` is one batch-major array (one-input models) or an object of
    them keyed by input name; every input must have the same number of rows."""
    names = [t.name for t in signature.inputs]
    if isinstance(inputs, dict) and set(inputs) == set(names):
        columns = inputs
    elif len(names) == 1 and isinstance(inputs, list):
        columns = {names[0]: inputs}
    else:
        raise InvalidInput(
            "'inputs' must hold the model's inputs",
            field="inputs",
            expected="{"
            + ", ".join(f'"{t.name}": [rows of {t.describe()}]' for t in signature.inputs)
            + "}"
            + (" or a bare array of rows" if len(names) == 1 else ""),
        )
    arrays = {}
    for spec in signature.inputs:
        field = f"inputs.{spec.name}" if isinstance(inputs, dict) else "inputs"
        value = columns[spec.name]
        if not isinstance(value, list):
            raise InvalidInput("an input must be a list of rows", field=field, expected=f"rows of {spec.describe()}")
        _check_row_count(len(value), max_rows, field)
        arrays[spec.name] = to_array(value, spec, field)
    counts = {name: len(a) for name, a in arrays.items()}
    if len(set(counts.values())) > 1:
        raise InvalidInput(
            f"inputs have different numbers of rows: {counts}",
            field="inputs",
            expected="the same number of rows for every input",
        )
    return arrays


def _check_row_count(rows: int, max_rows: int, field: str) -> None:
    if rows == 0:
        raise InvalidInput(f"'{field}' is empty", field=field, expected=f"1 to {max_rows} rows")
    if rows > max_rows:
        raise InvalidInput(
            f"{rows} rows is more than this server takes in one request",
            field=field,
            expected=f"1 to {max_rows} rows (MAX_ROWS_PER_REQUEST); send bulk data to /batches",
        )


def to_array(rows: Any, spec: TensorSpec, field: str, maybe_booleans: bool = True) -> np.ndarray:
    """Convert rows of one input to an array of the spec's dtype, checking shape, types and values."""
    try:
        raw = np.asarray(rows)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInput("rows are ragged or not numbers", field=field, expected=_rows_of(spec)) from None
    if raw.dtype.kind not in "biuf":
        what = "strings" if raw.dtype.kind in "US" else "values that are not numbers (or rows of unequal length)"
        raise InvalidInput(f"rows contain {what}", field=field, expected=_rows_of(spec))
    got = raw.shape[1:]
    if len(got) != len(spec.shape) or any(d is not None and d != g for d, g in zip(spec.shape, got)):
        raise InvalidInput(f"rows have shape {list(got)}", field=field, expected=_rows_of(spec))
    target = np.dtype(spec.dtype)
    check_booleans(rows, raw, spec.dtype, field, maybe_booleans)
    if target.kind == "f":
        array = raw.astype(target)
        if not np.isfinite(array).all():  # one pass in the common case; which error it is only when there is one
            if raw.dtype.kind == "f" and not np.isfinite(raw).all():
                raise InvalidInput("rows contain NaN or infinite values", field=field, expected="finite numbers")
            raise InvalidInput(
                f"rows contain values too large for {spec.dtype}", field=field, expected="finite numbers"
            )
        return array
    if target.kind in _INT_KINDS or target.kind == "b":
        if raw.dtype.kind == "f" and not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
            raise InvalidInput("rows contain non-integer values", field=field, expected=f"integers ({spec.dtype})")
        if target.kind in _INT_KINDS:
            info = np.iinfo(target)
            if raw.size and (raw.min() < info.min or raw.max() > info.max):
                raise InvalidInput(
                    f"rows contain values outside {spec.dtype}",
                    field=field,
                    expected=f"integers from {info.min} to {info.max}",
                )
        return raw.astype(target)
    raise InvalidInput(f"this server cannot feed dtype {spec.dtype}", field=field, expected=_rows_of(spec))


def _rows_of(spec: TensorSpec) -> str:
    """What `to_array` expected, for its errors (formatted only for one: a microsecond a request otherwise)."""
    return f"rows of shape {spec.describe()}"


def check_booleans(values: Any, raw: np.ndarray, dtype: str, field: str, maybe_booleans: bool = True) -> None:
    """JSON true/false only for a bool input, and only true/false there (as TF Serving): numpy would read
    booleans as 1/0 (and numbers as booleans) without a word.

    `raw` is np.asarray(values); a list mixing booleans and numbers comes out numeric, so such a list is walked.
    Arrays (an .npy upload, KServe binary tensors) carry a dtype of their own and are converted as before.
    """
    if not isinstance(values, list):
        return
    wants_bool = np.dtype(dtype).kind == "b"
    if wants_bool and raw.dtype.kind != "b":
        raise InvalidInput(
            "rows contain numbers where true/false is expected", field=field, expected=f"true or false ({dtype})"
        )
    if not wants_bool and (raw.dtype.kind == "b" or (maybe_booleans and holds_booleans(values, raw.ndim))):
        raise InvalidInput(
            "rows contain true/false where numbers are expected",
            field=field,
            expected=f"numbers ({dtype}); true/false only for bool inputs",
        )


def may_hold_booleans(body: bytes) -> bool:
    """Whether a JSON body can hold a true or false at all: one byte search, where looking for one among the
    values of numeric rows walks them all (a 64-row request's largest validation cost)."""
    return b"true" in body or b"false" in body


def holds_booleans(values: list, depth: int) -> bool:
    """Whether a regular nested list `depth` levels deep holds a bool among its values (one C-speed pass)."""
    flat: Iterable[Any] = values
    for _ in range(depth - 1):
        flat = chain.from_iterable(flat)
    return bool in set(map(type, flat))
