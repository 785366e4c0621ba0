"""The app's request: query and form parameters read as Werkzeug's MultiDict reads them."""

from __future__ import annotations

from flask import request
from werkzeug.datastructures import ImmutableMultiDict

from api import create_app
from api.request_context import ApiRequest
from shared.config import Settings


def test_parameters_answer_every_get_as_werkzeugs_multidict():
    pairs = [("wait", "30"), ("model", "a"), ("model", "b"), ("empty", "")]
    ours, theirs = ApiRequest.parameter_storage_class(pairs), ImmutableMultiDict(pairs)
    for name in ("wait", "model", "empty", "absent"):
        assert ours.get(name) == theirs.get(name), name
        assert ours.get(name, "default") == theirs.get(name, "default"), name
        assert ours.get(name, -1, type=int) == theirs.get(name, -1, type=int), name
    assert ours.to_dict() == theirs.to_dict() and ours.getlist("model") == ["a", "b"]


def test_the_app_reads_query_strings_with_them():
    app = create_app(Settings.from_env({}).replace(redis_url="redis://127.0.0.1:1/0"))  # reaches no Redis
    with app.test_request_context("/predict?wait=2"):
        assert isinstance(request.args, ApiRequest.parameter_storage_class) and request.args.get("wait") == "2"
