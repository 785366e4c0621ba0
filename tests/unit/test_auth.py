"""API keys at the edge of the app: the before-request check, and the owner comparison stores use."""

from __future__ import annotations

import hashlib

import pytest

from api import create_app
from api.auth import current_owner, owns, require_owner
from shared.config import Settings
from shared.errors import NotFound
from shared.tenants import fingerprint

KEY = "alpha-key-0001"


@pytest.fixture
def app():
    # Nothing here reaches Redis: the checks run before any view does (the port is closed on purpose).
    return create_app(Settings.from_env({}).replace(api_keys=KEY, redis_url="redis://127.0.0.1:1/0"))


@pytest.fixture
def client(app):
    return app.test_client()


def test_a_fingerprint_is_the_keys_sha256():
    assert fingerprint(KEY) == hashlib.sha256(KEY.encode()).hexdigest()


def test_with_keys_off_everyone_owns_everything():
    assert owns(None, "") and owns(b"anything", "")


def test_with_keys_on_only_the_recorded_owner_matches():
    mine = fingerprint(KEY)
    assert owns(mine.encode(), mine) and owns(mine, mine)
    assert not owns(fingerprint("other").encode(), mine)
    assert not owns(None, mine) and not owns(b"\xff\xfe", mine)


@pytest.mark.parametrize("header", [None, "Bearer nope", f"Token {KEY}", "Bearer", f"Bearer {KEY}x"])
def test_requests_without_a_valid_key_are_401_before_the_view_runs(client, header):
    response = client.get("/v1/models", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="inference"'


def test_a_valid_key_reaches_the_view_and_health_needs_none(client):
    assert client.get("/healthz").status_code == 200
    # Past the check, the view needs Redis, which is not there: 503, not 401.
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 503
    assert client.get("/v1/models", headers={"Authorization": f"bearer  {KEY}"}).status_code == 503


def test_what_a_caller_creates_records_its_fingerprint_and_only_it_passes_require_owner(app):
    with app.test_request_context("/result/x", headers={"Authorization": f"Bearer {KEY}"}):
        app.preprocess_request()
        assert current_owner() == fingerprint(KEY)
        require_owner(fingerprint(KEY).encode(), NotFound("no such thing"))
        with pytest.raises(NotFound, match="no such thing"):
            require_owner(fingerprint("someone-else"), NotFound("no such thing"))
