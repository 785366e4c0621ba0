"""Load a model once and call it through a compiled path: `.keras`, legacy `.h5`, or a SavedModel directory.

Keras models are wrapped in a `tf.function` whose input signature has a `None` first (row) dimension, so one
trace serves any number of rows (never `model.predict`, which costs tens of ms a call). SavedModels are
called through their signatures (every one is loaded: `serving_default` and, for TF Serving's models,
classify and regress ones); only a signature with a fixed number of rows is padded. A SavedModel's
SignatureDefs are read from its `saved_model.pb` and advertised as they are, so metadata matches TF Serving.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from shared.signature import (
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    ModelSignature,
    SignatureDef,
    TensorSpec,
    default_signature_def,
)

log = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]


class ModelLoadError(RuntimeError):
    """The model file is missing or not a model this worker can serve; the message says which and why."""


class SignatureCall:
    """One compiled signature: a call on named, stacked arrays, padded when its number of rows is fixed."""

    def __init__(self, call: Callable[[Arrays], Arrays], static_batch: int | None = None) -> None:
        self._call = call
        self._static_batch = static_batch

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Arrays:
        if self._static_batch is None:
            return self._call(dict(inputs))
        return self._predict_padded(inputs, self._static_batch)

    def _predict_padded(self, inputs: Mapping[str, np.ndarray], size: int) -> Arrays:
        # A signature fixed to one number of rows: feed it slices of exactly that many.
        rows = len(next(iter(inputs.values())))
        parts: list[Arrays] = []
        for start in range(0, rows, size):
            chunk = {k: v[start : start + size] for k, v in inputs.items()}
            short = size - len(next(iter(chunk.values())))
            if short:
                chunk = {k: np.concatenate([v, np.zeros((short, *v.shape[1:]), v.dtype)]) for k, v in chunk.items()}
            out = self._call(chunk)
            parts.append({k: v[: size - short] for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


class LoadedModel:
    """A model ready to serve: its signatures and one compiled call per signature."""

    def __init__(self, signature: ModelSignature, calls: dict[str, SignatureCall]) -> None:
        self.signature = signature
        self._calls = calls

    def predict(self, inputs: Mapping[str, np.ndarray], signature: str = DEFAULT_SIGNATURE) -> Arrays:
        """Run one micro-batch through the named signature; every output has as many rows as the inputs.

        Raises:
            KeyError: the model has no signature of that name.
        """
        return self._calls[signature](inputs)

    def input_names(self, signature: str = DEFAULT_SIGNATURE) -> list[str]:
        """The input names of the named signature (raises KeyError for an unknown one)."""
        return [t.name for t in self.signature.select(signature).inputs]

    def warm_up(self, microbatch_rows: list[int]) -> float:
        """Run micro-batches of zeros, of the given numbers of rows, so the first real request pays no start-up
        cost; returns seconds.

        A default signature taking byte strings (serialized tf.Example) is not warmed: zeros do not parse.
        """
        started = time.monotonic()
        if any(t.dtype == "string" for t in self.signature.inputs):
            return 0.0
        for size in sorted(set(microbatch_rows)):
            self.predict(zero_inputs(self.signature, size))
        return time.monotonic() - started


def load_and_warm(path: str, name: str, version: str, microbatch_rows: list[int]) -> LoadedModel:
    """Load one version (a version directory, or a model file or SavedModel) and warm it up; logs the seconds
    it took and how much the process's resident memory grew (the memory the version takes, roughly).

    Raises:
        ModelLoadError: as `load_model`; ModelPathError for a version directory without one model.
    """
    from worker.model.path import model_in_version_dir

    rss_before, started = resident_bytes(), time.monotonic()
    model = load_model(model_in_version_dir(path) if os.path.isdir(path) else path, name, version)
    warm_s = model.warm_up(microbatch_rows)
    log.info(
        "model %s version %s loaded and warmed up in %.2f s (warm-up %.2f s), resident memory +%.0f MiB",
        name,
        version,
        time.monotonic() - started,
        warm_s,
        (resident_bytes() - rss_before) / 2**20,
    )
    return model


def resident_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def zero_inputs(signature: ModelSignature, rows: int) -> Arrays:
    """Rows of zeros matching the signature (unknown dimensions become 1)."""
    return {t.name: np.zeros((rows, *[d or 1 for d in t.shape]), dtype=t.dtype) for t in signature.inputs}


def load_model(path: str, name: str, version: str) -> LoadedModel:
    """Load the model at `path` and compile its call.

    Raises:
        ModelLoadError: the path does not exist or does not hold a model this worker can serve.
    """
    if not os.path.exists(path):
        raise ModelLoadError(
            f"MODEL_PATH {path!r} does not exist: expected a .keras or .h5 file or a SavedModel directory"
        )
    try:
        if os.path.isdir(path):
            return _load_saved_model(path, name, version)
        if path.endswith((".keras", ".h5", ".hdf5")):
            return _load_keras(path, name, version)
    except ModelLoadError:
        raise
    except Exception as exc:  # TF and Keras raise many unrelated types for a bad file
        raise ModelLoadError(f"could not load model from {path!r}: {type(exc).__name__}: {exc}") from exc
    raise ModelLoadError(f"MODEL_PATH {path!r} is not a model: expected a .keras or .h5 file or a SavedModel directory")


def _spec(name: str, shape: tf.TensorShape | tuple, dtype: object) -> TensorSpec:
    dims = () if getattr(shape, "rank", 0) is None else tuple(shape)  # unknown rank: one value per row
    return TensorSpec(
        name=name, shape=tuple(None if d is None else int(d) for d in dims), dtype=tf.as_dtype(dtype).name
    )


def _load_keras(path: str, name: str, version: str) -> LoadedModel:
    import keras

    model = keras.saving.load_model(path, compile=False)
    in_names = [t.name for t in model.inputs]
    out_names = list(model.output_names)
    inputs = tuple(_spec(n, t.shape[1:], t.dtype) for n, t in zip(in_names, model.inputs))
    outputs = tuple(_spec(n, t.shape[1:], t.dtype) for n, t in zip(out_names, model.outputs))
    signature = ModelSignature(name, version, inputs, outputs, (default_signature_def(inputs, outputs),))
    tensor_specs = {s.name: tf.TensorSpec((None, *s.shape), s.dtype, name=s.name) for s in signature.inputs}

    @tf.function(input_signature=[tensor_specs], reduce_retracing=True)
    def call(inputs: dict[str, Any]) -> Any:
        feed = inputs[in_names[0]] if len(in_names) == 1 else [inputs[n] for n in in_names]
        outputs = model(feed, training=False)
        if isinstance(outputs, dict):
            return {n: outputs[n] for n in out_names}
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        return dict(zip(out_names, outputs))

    def run(arrays: Arrays) -> Arrays:
        return {k: v.numpy() for k, v in call(arrays).items()}

    return LoadedModel(signature, {DEFAULT_SIGNATURE: SignatureCall(run)})


def _load_saved_model(path: str, name: str, version: str) -> LoadedModel:
    loaded = tf.saved_model.load(path)
    if DEFAULT_SIGNATURE not in loaded.signatures:
        raise ModelLoadError(
            f"SavedModel {path!r} has no {DEFAULT_SIGNATURE!r} signature (it has {list(loaded.signatures)})"
        )
    tf_json = _signature_defs_json(path)
    defs, calls = [], {}
    for key in sorted(loaded.signatures):
        fn = loaded.signatures[key]
        kwargs = fn.structured_input_signature[1]
        batch_dims = {spec.shape[0] if spec.shape.rank else None for spec in kwargs.values()}
        static_batch = next(iter(batch_dims)) if len(batch_dims) == 1 and None not in batch_dims else None
        inputs = tuple(_spec(n, s.shape[1:] if s.shape.rank else s.shape, s.dtype) for n, s in sorted(kwargs.items()))
        outputs = tuple(_spec(n, s.shape[1:], s.dtype) for n, s in sorted(fn.structured_outputs.items()))
        found = default_signature_def(inputs, outputs, key)
        method = tf_json.get(key, {}).get("method_name", PREDICT_METHOD)
        defs.append(SignatureDef(key, method, inputs, outputs, tf_json.get(key, found.tf_json)))
        calls[key] = SignatureCall(_signature_runner(fn, loaded), static_batch)
    default = next(d for d in defs if d.name == DEFAULT_SIGNATURE)
    return LoadedModel(ModelSignature(name, version, default.inputs, default.outputs, tuple(defs)), calls)


def _signature_runner(fn: Callable, loaded: object) -> Callable[[Arrays], Arrays]:
    def run(arrays: Arrays) -> Arrays:
        result = fn(**{k: tf.constant(v) for k, v in arrays.items()})
        return {k: v.numpy() for k, v in result.items()}

    # Keep the loaded object alive: the signature function holds only weak references to its variables.
    run.loaded = loaded  # type: ignore[attr-defined]
    return run


def _signature_defs_json(path: str) -> dict[str, dict]:
    """The serving MetaGraph's SignatureDefs in TF Serving's JSON (proto field names, defaults printed)."""
    from google.protobuf import json_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    graphs = [g for g in saved.meta_graphs if "serve" in g.meta_info_def.tags] or list(saved.meta_graphs[:1])
    if not graphs:
        return {}
    return {
        key: json_format.MessageToDict(sig, always_print_fields_with_no_presence=True, preserving_proto_field_name=True)
        for key, sig in graphs[0].signature_def.items()
    }
