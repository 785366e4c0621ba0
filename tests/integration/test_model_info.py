"""The API's view of the models the workers advertise (api/model_info.py): what a request naming no version
resolves to is remembered only as long as the view it was made from."""

from __future__ import annotations

import pytest

from api.model_info import ModelInfo, ModelNotServed
from shared.signature import ModelSignature, TensorSpec
from tests.support import advertise_model


def _signature(version: str, width: int) -> ModelSignature:
    return ModelSignature(
        "double", version, (TensorSpec("x", (width,), "float32"),), (TensorSpec("y", (2,), "float32"),)
    )


def test_a_request_naming_no_version_gets_the_newest_and_a_new_version_once_the_view_is_read_again(redis_db):
    advertise_model(redis_db, _signature("1", 2))
    info = ModelInfo(redis_db)
    first = info.resolve()
    assert (first.name, first.signature.version, first.version) == ("double", "1", None)
    assert info.resolve("double") == first and info.resolve() is first  # remembered within the view

    advertise_model(redis_db, _signature("2", 3))
    info._expires = 0.0  # the view's CACHE_S has passed
    newest = info.resolve()
    assert newest.signature.version == "2" and newest.signature.inputs[0].shape == (3,)
    assert info.resolve("double", "2").signature.version == "2"


def test_an_unknown_model_is_refused_and_not_remembered(redis_db):
    advertise_model(redis_db, _signature("1", 2))
    info = ModelInfo(redis_db)
    with pytest.raises(ModelNotServed):
        info.resolve("other")
    assert info.resolve().name == "double"
