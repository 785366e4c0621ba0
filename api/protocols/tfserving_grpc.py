"""TensorFlow Serving's gRPC API: PredictionService (Predict, GetModelMetadata, Classify, Regress) and
ModelService.GetModelStatus, on the published protos of `tensorflow-serving-api`.

Each call is one job on the same queue as /predict (api/protocols/grpc_backend.py `Backend.infer`). Signature choice,
the classify/regress checks and their results are shared with the REST routes (api/protocols/tfserving_methods.py).
MultiInference and HandleReloadConfigRequest answer UNIMPLEMENTED.
"""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from api.jobs.submit import Predictions
from api.model_info import Served
from api.protocols.grpc_backend import Backend, check_arrays, rpc
from api.protocols.tfserving_methods import (
    NOT_LOADED,
    Method,
    choose,
    classify_results,
    regress_results,
    resolve,
    version_statuses,
)
from shared.errors import InvalidInput
from shared.signature import ModelRef, ModelSignature

SIGNATURE_DEF = "signature_def"
# Where a TensorProto keeps values of each dtype when written value by value, as TF Serving writes replies
# (Tensor::AsProtoField), so that clients reading `float_val` and the like find them there.
_VALUE_FIELDS = {
    "float32": "float_val",
    "float64": "double_val",
    "int8": "int_val",
    "int16": "int_val",
    "int32": "int_val",
    "uint8": "int_val",
    "uint16": "int_val",
    "int64": "int64_val",
    "uint32": "uint32_val",
    "uint64": "uint64_val",
    "bool": "bool_val",
}


def served(backend: Backend, spec: model_pb2.ModelSpec) -> Served:
    """The model version the ModelSpec names: name, and version or version_label (TF Serving's NOT_FOUND words)."""
    asked = str(spec.version.value) if spec.HasField("version") else None
    return resolve(backend.model_info, spec.name, asked, spec.version_label or None)


def reply_spec(model: ModelRef, signature_name: str) -> model_pb2.ModelSpec:
    """The ModelSpec TF Serving puts on a reply: name, numeric version (the one that answered), the signature."""
    spec = model_pb2.ModelSpec(name=model.name, signature_name=signature_name)
    if model.version.isdigit():
        spec.version.value = int(model.version)
    return spec


def tensor_proto(array: np.ndarray) -> Any:
    """A TensorProto with the values in their typed field (float_val...), else in tensor_content."""
    field = _VALUE_FIELDS.get(array.dtype.name)
    if field is None:
        return tf.make_tensor_proto(array)
    proto = tf.make_tensor_proto(np.zeros((0,), array.dtype))
    proto.tensor_shape.CopyFrom(tf.TensorShape(array.shape).as_proto())
    proto.ClearField("tensor_content")
    getattr(proto, field).extend(array.reshape(-1).tolist())
    return proto


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """tensorflow.serving.PredictionService over the queue."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @rpc
    def Predict(
        self, request: predict_pb2.PredictRequest, context: grpc.ServicerContext
    ) -> predict_pb2.PredictResponse:
        target = served(self.backend, request.model_spec)
        key, signature = choose(target.signature, request.model_spec.signature_name, Method.PREDICT)
        arrays = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        lifted = (
            len(signature.inputs) == 1
            and signature.inputs[0].shape == (1,)
            and all(a.ndim == 1 for a in arrays.values())
        )
        if lifted:  # TF Serving takes one value per row for rows of shape [1], and answers in kind
            arrays = {name: a.reshape(-1, 1) for name, a in arrays.items()}
        arrays = check_arrays(arrays, signature, self.backend.settings.max_rows_per_request)
        wanted = list(request.output_filter) or [t.name for t in signature.outputs]
        unknown = set(wanted) - {t.name for t in signature.outputs}
        if unknown:
            raise InvalidInput(
                f"output tensor alias not found in signature: {min(unknown)} "
                f"Outputs expected to be in the set {{{','.join(t.name for t in signature.outputs)}}}."
            )
        outcome = self.backend.infer(arrays, target, self.backend.owner(context), key)
        outputs = outcome.by_name(signature)
        dtypes = {t.name: t.dtype for t in signature.outputs}
        response = predict_pb2.PredictResponse(model_spec=reply_spec(outcome.model, key))
        for name in wanted:
            array = np.asarray(outputs[name], dtype=dtypes[name])
            if lifted and array.ndim == 2 and array.shape[1] == 1:
                array = array.reshape(-1)
            response.outputs[name].CopyFrom(tensor_proto(array))
        return response

    @rpc
    def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: grpc.ServicerContext
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        signature = served(self.backend, request.model_spec).signature
        if not request.metadata_field:
            raise InvalidInput("GetModelMetadataRequest must specify at least one metadata_field")
        others = [f for f in request.metadata_field if f != SIGNATURE_DEF]
        if others:
            raise InvalidInput(f"Metadata field {others[0]} is not supported")
        defs = {key: d.tf_json for key, d in signature.signature_defs().items()}
        signature_map = json_format.ParseDict({SIGNATURE_DEF: defs}, get_model_metadata_pb2.SignatureDefMap())
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=reply_spec(signature.model_ref, ""))
        response.metadata[SIGNATURE_DEF].Pack(signature_map)
        return response

    @rpc
    def Classify(
        self, request: classification_pb2.ClassificationRequest, context: grpc.ServicerContext
    ) -> classification_pb2.ClassificationResponse:
        key, signature, outcome = self._examples(request, Method.CLASSIFY, self.backend.owner(context))
        response = classification_pb2.ClassificationResponse(model_spec=reply_spec(outcome.model, key))
        for pairs in classify_results(outcome.by_name(signature)):
            classification = response.result.classifications.add()
            for label, score in pairs:
                classification.classes.add(label=label, score=score)
        return response

    @rpc
    def Regress(
        self, request: regression_pb2.RegressionRequest, context: grpc.ServicerContext
    ) -> regression_pb2.RegressionResponse:
        key, signature, outcome = self._examples(request, Method.REGRESS, self.backend.owner(context))
        response = regression_pb2.RegressionResponse(model_spec=reply_spec(outcome.model, key))
        for value in regress_results(outcome.by_name(signature)):
            response.result.regressions.add(value=value)
        return response

    def _examples(self, request: Any, method: Method, owner: str) -> tuple[str, ModelSignature, Predictions]:
        """Run the request's tf.Examples (context merged into each) through the chosen signature, as `owner`'s job."""
        target = served(self.backend, request.model_spec)
        key, signature = choose(target.signature, request.model_spec.signature_name, method)
        which = request.input.WhichOneof("kind")
        if which is None:
            raise InvalidInput("Input is empty")
        listed = getattr(request.input, which)
        context = listed.context if which == "example_list_with_context" else None
        serialized = []
        for example in listed.examples:
            if context is not None:  # as TF Serving: the context, then the example's own features over it
                merged = type(example)()
                merged.CopyFrom(context)
                merged.MergeFrom(example)
                example = merged
            serialized.append(example.SerializeToString())
        if not serialized:
            raise InvalidInput("Input is empty")
        if len(serialized) > self.backend.settings.max_rows_per_request:
            raise InvalidInput(
                f"{len(serialized)} examples is more than this server takes in one request "
                f"(MAX_ROWS_PER_REQUEST={self.backend.settings.max_rows_per_request})"
            )
        arrays = {signature.inputs[0].name: np.array(serialized, dtype=object)}
        return key, signature, self.backend.infer(arrays, target, owner, key)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """tensorflow.serving.ModelService: GetModelStatus (config reload is not served)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @rpc
    def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        asked = str(spec.version.value) if spec.HasField("version") else None
        state = get_model_status_pb2.ModelVersionStatus
        listed = []
        for version in version_statuses(self.backend.model_info, spec.name, asked):
            status = state(
                version=int(version.version) if version.version.isdigit() else 0,
                state=getattr(state, version.state.value),
            )
            if version.error:
                code = grpc.StatusCode.UNAVAILABLE if version.error == NOT_LOADED else grpc.StatusCode.UNKNOWN
                status.status.error_code = code.value[0]
                status.status.error_message = version.error
            listed.append(status)
        return get_model_status_pb2.GetModelStatusResponse(model_version_status=listed)
