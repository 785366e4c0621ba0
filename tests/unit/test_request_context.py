"""The app's request: query and form parameters read as Werkzeug's MultiDict reads them."""

from __future__ import annotations

import pytest
from flask import request, session
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


def test_the_session_is_empty_and_read_only_as_flasks_without_a_secret_key():
    app = create_app(Settings.from_env({}).replace(redis_url="redis://127.0.0.1:1/0"))
    with app.test_request_context("/predict"):
        assert dict(session) == {} and session.get("user") is None
        with pytest.raises(RuntimeError, match="no secret key"):
            session["user"] = "x"
    response = app.test_client().get("/no/such/route")  # answered without Redis; Flask saves no null session
    assert "Set-Cookie" not in response.headers and "Cookie" not in response.headers.get("Vary", "")
