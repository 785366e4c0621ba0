"""The OpenAPI document matches the real routes, and /docs loads every asset from this server."""

from __future__ import annotations

import re

import pytest

from api import create_app
from shared.config import Settings

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def app():
    return create_app(Settings.from_env({}))  # Redis is not touched by these routes


def _routes(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        found |= {(path, m.lower()) for m in rule.methods if m.lower() in METHODS}
    return found


def _described(document) -> set[tuple[str, str]]:
    return {(path, m) for path, ops in document["paths"].items() for m in ops if m in METHODS}


def test_every_route_is_described_and_every_described_route_exists(app):
    document = app.test_client().get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    routes, described = _routes(app), _described(document)
    assert routes - described == set(), "routes missing from the OpenAPI document"
    assert described - routes == set(), "the OpenAPI document describes routes that do not exist"


def test_described_path_parameters_match_the_path_templates(app):
    document = app.test_client().get("/openapi.json").get_json()
    for path, ops in document["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, f"{method.upper()} {path}"


def test_every_schema_reference_resolves(app):
    document = app.test_client().get("/openapi.json").get_json()
    refs = set(
        re.findall(r'"#/components/schemas/([^"]+)"', app.test_client().get("/openapi.json").get_data(as_text=True))
    )
    assert refs and refs <= set(document["components"]["schemas"])


def test_docs_page_loads_all_its_assets_from_this_server(app):
    client = app.test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3 and "/openapi.json" in html
    assert not re.search(r"https?://", html), "the docs page must not load anything from another host"
    for asset in assets:
        assert asset.startswith("/docs/")
        response = client.get(asset)
        assert response.status_code == 200 and len(response.get_data()) > 100, asset
    assert b"SwaggerUIBundle" in client.get("/docs/swagger-ui-bundle.js").get_data()


def test_docs_serves_only_its_own_assets(app):
    client = app.test_client()
    assert client.get("/docs/index.html").status_code == 404
    assert client.get("/docs/..%2F..%2Fconfig.py").status_code == 404
