"""What TF Serving's REST and gRPC APIs share: resolving the model a request names (by version or label) and
its version statuses, picking a signature for a method, and shaping the results of classify and regress.
Error messages are TF Serving's own, so clients that match on them keep working.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from api.model_info import ModelInfo, ModelNotServed, Served
from shared.errors import InvalidInput, NotFound, NotReady
from shared.model_registry import VersionState, VersionStatus, version_order
from shared.signature import (
    CLASSIFY_METHOD,
    DEFAULT_SIGNATURE,
    PREDICT_METHOD,
    REGRESS_METHOD,
    ModelSignature,
    SignatureDef,
)

NOT_LOADED = "no live worker has the model loaded"  # a version's error while no worker serves its model
CLASSIFY_SCORES = "scores"
CLASSIFY_CLASSES = "classes"
REGRESS_OUTPUTS = "outputs"


class Method(Enum):
    """The TF Serving method a request calls; the value is the SignatureDef method_name it needs."""

    PREDICT = PREDICT_METHOD
    CLASSIFY = CLASSIFY_METHOD
    REGRESS = REGRESS_METHOD


def choose(signature: ModelSignature, name: str, method: Method) -> tuple[str, ModelSignature]:
    """The signature `name` ("" for the default one) fit for `method`, and the model seen through it.

    Predict may run any signature (as in TF Serving); classify and regress need a signature of their
    method with one input, which here must take serialized tf.Example protos (a DT_STRING tensor).
    """
    key = name or DEFAULT_SIGNATURE
    found = signature.signature_defs().get(key)
    if method is Method.PREDICT:
        if found is None:
            raise InvalidInput(f'Serving signature name: "{key}" not found in signature def')
        return key, signature.select(key)
    if found is None:
        raise InvalidInput(f"No signature was found with the name: {key}")
    _check_method(found, method)
    return key, signature.select(key)


def _check_method(found: SignatureDef, method: Method) -> None:
    kind = "classification" if method is Method.CLASSIFY else "regression"
    if found.method != method.value:
        raise InvalidInput(f"Expected {kind} signature method_name to be {method.value}. Was: {found.method}")
    if len(found.inputs) != 1:
        raise InvalidInput("Expected one input Tensor.")
    if found.inputs[0].dtype != "string":
        raise InvalidInput(
            f"signature {found.name!r} takes a {found.inputs[0].dtype} tensor, not serialized "
            "tf.Example protos: call it with predict"
        )
    wanted = {CLASSIFY_SCORES} if method is Method.CLASSIFY else {REGRESS_OUTPUTS}
    if not wanted & {t.name for t in found.outputs}:
        raise InvalidInput(
            f"No {kind} outputs found in SignatureDef: {found.name} (this server needs an output named {min(wanted)!r})"
        )


def classify_results(outputs: dict[str, list[Any]]) -> list[list[tuple[str, float]]]:
    """Per example, its (label, score) pairs; labels are "" when the signature has no `classes` output."""
    scores = [_as_list(row) for row in outputs[CLASSIFY_SCORES]]
    classes = outputs.get(CLASSIFY_CLASSES)
    if classes is None:
        return [[("", float(s)) for s in row] for row in scores]
    return [[(str(c), float(s)) for c, s in zip(_as_list(labels), row)] for labels, row in zip(classes, scores)]


def regress_results(outputs: dict[str, list[Any]]) -> list[float]:
    """One value per example: outputs of shape [batch] or [batch, 1], as TF Serving requires."""
    values = []
    for row in outputs[REGRESS_OUTPUTS]:
        row = _as_list(row)
        if len(row) != 1:
            raise InvalidInput(
                f"Expected output Tensor shape to be either [batch_size] or [batch_size, 1] "
                f"but got a row of {len(row)} values"
            )
        values.append(float(row[0]))
    return values


def _as_list(row: Any) -> list[Any]:
    return row if isinstance(row, list) else [row]


def resolve(model_info: ModelInfo, name: str, version: str | None, label: str | None = None) -> Served:
    """The model version a TF Serving request names (by version or label), with TF Serving's NOT_FOUND words."""
    try:
        return model_info.resolve(name, version, label)
    except ModelNotServed as exc:
        if exc.label is not None and exc.version is None:
            raise NotFound(f"Unrecognized servable version label: {exc.label}") from None
        wanted = f"Specific({exc.model}, {exc.version})" if exc.version is not None else f"Latest({exc.model})"
        raise NotFound(f"Servable not found for request: {wanted}") from None


def version_statuses(model_info: ModelInfo, name: str, version: str | None) -> list[VersionStatus]:
    """GetModelStatus: every version of the model (or the one asked for) with its state and error.

    Raises:
        NotReady: no worker has advertised a model yet.
        NotFound: the model, or that version of it, is not known (TF Serving's words).
    """
    models = model_info.models()
    if not models:
        raise NotReady("no worker has loaded a model yet; start a worker or retry shortly", retry_after=2)
    status = models.get(name)
    if version is not None and version.isdigit():
        version = str(int(version))
    if status is None or (version is not None and version not in status.versions):
        wanted = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
        raise NotFound(f"Servable not found for request: {wanted}")
    listed = status.versions.values() if version is None else [status.versions[version]]
    if not model_info.is_live(name):  # as last advertised: nothing is loaded while no worker runs
        listed = [VersionStatus(v.version, VersionState.END, NOT_LOADED) for v in listed]
    return sorted(listed, key=lambda v: version_order(v.version), reverse=True)
