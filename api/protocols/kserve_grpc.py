"""KServe v2's gRPC API (inference.GRPCInferenceService, what Triton and tritonclient.grpc speak), on the
published protos of `tritonclient[grpc]`: health, server and model metadata, readiness, and ModelInfer with
typed `contents` or `raw_input_contents` in, `raw_output_contents` out. Each ModelInfer is one job on the
same queue as /predict. The model repository, statistics, trace, logging, shared-memory and streaming
calls answer UNIMPLEMENTED.
"""

from __future__ import annotations

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from api.model_info import Served
from api.protocols.grpc_backend import Backend, check_arrays, rpc
from api.protocols.kserve_codec import DATATYPES, datatype, resolve
from api.protocols.kserve_rest import EXTENSIONS, PLATFORM, SERVER_NAME, SERVER_VERSION
from shared.errors import InvalidInput, NotFound, NotReady
from shared.signature import TensorSpec

# Which InferTensorContents field holds values of each v2 datatype (FP16 travels raw only).
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def served(backend: Backend, name: str, version: str) -> Served:
    """The model version the request names ("" for the newest), in KServe's "unknown model" words."""
    return resolve(backend.model_info, name, version)


def tensor_metadata(spec: TensorSpec) -> service_pb2.ModelMetadataResponse.TensorMetadata:
    return service_pb2.ModelMetadataResponse.TensorMetadata(
        name=spec.name, datatype=datatype(spec.dtype), shape=[-1, *(-1 if d is None else d for d in spec.shape)]
    )


def input_array(i: int, tensor: service_pb2.ModelInferRequest.InferInputTensor, raw: list[bytes]) -> np.ndarray:
    """One input tensor as an array of its declared datatype and shape, from raw bytes or typed contents."""
    where = f"inputs[{i}] ({tensor.name})"
    if tensor.datatype not in DATATYPES:
        raise InvalidInput(f"{where} has datatype {tensor.datatype!r}", expected=", ".join(DATATYPES))
    dtype = np.dtype(DATATYPES[tensor.datatype]).newbyteorder("<")
    shape = tuple(int(d) for d in tensor.shape)
    if raw:
        if i >= len(raw):
            raise InvalidInput(f"{where} has no raw_input_contents entry", expected="one entry per input, in order")
        values = np.frombuffer(raw[i], dtype=dtype)
    else:
        field = CONTENTS.get(tensor.datatype)
        if field is None:
            raise InvalidInput(f"{where}: {tensor.datatype} data must be sent in raw_input_contents")
        values = np.asarray(getattr(tensor.contents, field), dtype=dtype)
    if values.size != int(np.prod(shape)) or any(d < 0 for d in shape):
        raise InvalidInput(
            f"{where} holds {values.size} values for shape {list(shape)}", expected=f"{int(np.prod(shape))} values"
        )
    return values.reshape(shape)


class InferenceService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """inference.GRPCInferenceService over the queue."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @rpc
    def ServerLive(
        self, request: service_pb2.ServerLiveRequest, context: grpc.ServicerContext
    ) -> service_pb2.ServerLiveResponse:
        return service_pb2.ServerLiveResponse(live=True)

    @rpc
    def ServerReady(
        self, request: service_pb2.ServerReadyRequest, context: grpc.ServicerContext
    ) -> service_pb2.ServerReadyResponse:
        return service_pb2.ServerReadyResponse(ready=bool(self.backend.model_info.live_workers()))

    @rpc
    def ModelReady(
        self, request: service_pb2.ModelReadyRequest, context: grpc.ServicerContext
    ) -> service_pb2.ModelReadyResponse:
        try:
            target = served(self.backend, request.name, request.version)
        except (NotFound, NotReady):  # as Triton: an unknown or unloaded model is not ready, which is no error
            return service_pb2.ModelReadyResponse(ready=False)
        return service_pb2.ModelReadyResponse(ready=self.backend.model_info.is_live(target.name))

    @rpc
    def ServerMetadata(
        self, request: service_pb2.ServerMetadataRequest, context: grpc.ServicerContext
    ) -> service_pb2.ServerMetadataResponse:
        return service_pb2.ServerMetadataResponse(name=SERVER_NAME, version=SERVER_VERSION, extensions=EXTENSIONS)

    @rpc
    def ModelMetadata(
        self, request: service_pb2.ModelMetadataRequest, context: grpc.ServicerContext
    ) -> service_pb2.ModelMetadataResponse:
        target = served(self.backend, request.name, request.version)
        signature = target.signature
        return service_pb2.ModelMetadataResponse(
            name=signature.name,
            versions=[signature.version] if request.version else target.status.available(),
            platform=PLATFORM,
            inputs=[tensor_metadata(t) for t in signature.inputs],
            outputs=[tensor_metadata(t) for t in signature.outputs],
        )

    @rpc
    def ModelInfer(
        self, request: service_pb2.ModelInferRequest, context: grpc.ServicerContext
    ) -> service_pb2.ModelInferResponse:
        target = served(self.backend, request.model_name, request.model_version)
        signature = target.signature
        raw = list(request.raw_input_contents)
        arrays = {t.name: input_array(i, t, raw) for i, t in enumerate(request.inputs)}
        if len(arrays) != len(request.inputs):
            raise InvalidInput("an input is named twice", field="inputs")
        arrays = check_arrays(arrays, signature, self.backend.settings.max_rows_per_request)
        specs = {t.name: t for t in signature.outputs}
        wanted = [o.name for o in request.outputs] or list(specs)
        unknown = [name for name in wanted if name not in specs]
        if unknown:
            raise InvalidInput(
                f"unexpected inference output '{unknown[0]}' for model '{signature.name}'", expected=", ".join(specs)
            )
        outcome = self.backend.infer(arrays, target, self.backend.owner(context))
        outputs = outcome.by_name(signature)
        response = service_pb2.ModelInferResponse(
            model_name=signature.name, model_version=outcome.model.version, id=request.id
        )
        for name in wanted:
            array = np.ascontiguousarray(outputs[name], dtype=np.dtype(specs[name].dtype).newbyteorder("<"))
            response.outputs.add(name=name, datatype=datatype(specs[name].dtype), shape=list(array.shape))
            response.raw_output_contents.append(array.tobytes())
        return response
