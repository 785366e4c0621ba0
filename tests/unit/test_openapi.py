"""The OpenAPI document matches the real routes, lists every status with a schema, builds its row schemas
from the advertised signature, agrees with Allow headers, and /docs loads every asset from this server."""

from __future__ import annotations

import re

import orjson
import pytest
from openapi_spec_validator import validate

from api import create_app
from api.openapi.paths import Facts, document
from api.request_line import MAX_TARGET_BYTES
from shared.config import Settings
from shared.signature import ModelSignature, TensorSpec
from tests.support import advertise_model

METHODS = {"get", "post", "put", "patch", "delete"}
DIGITS = ModelSignature("digits", "3", (TensorSpec("pixels", (8, 8), "float32"),), (TensorSpec("p", (10,), "float32"),))
TWO_INPUTS = ModelSignature(
    "m",
    "1",
    (TensorSpec("a", (2,), "int32"), TensorSpec("flag", (), "bool")),
    (TensorSpec("y", (), "float32"), TensorSpec("z", (3,), "int64")),
)


def _settings(redis_db, **overrides) -> Settings:
    kwargs = redis_db.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    return Settings.from_env({}).replace(redis_url=url, **overrides)


@pytest.fixture
def app(redis_db):
    """The app on an empty Redis database: no model advertised."""
    return create_app(_settings(redis_db))


def _advertise(redis_db, signature: ModelSignature) -> None:
    advertise_model(redis_db, signature)


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


def _operations(doc):
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


@pytest.mark.parametrize("facts", [Facts(None, 1024, False), Facts(DIGITS, 16, True), Facts(TWO_INPUTS, 8, False)])
def test_the_document_is_valid_openapi_and_every_status_has_a_described_body(facts):
    doc = orjson.loads(document(facts))
    validate(doc)
    for path, method, op in _operations(doc):
        assert op["operationId"] and op["responses"], f"{method} {path}"
        for status, response in op["responses"].items():
            assert response.get("content"), f"{method.upper()} {path} {status} has no body schema"
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("Error"), f"{method.upper()} {path} {status}"
        # Every URL may be too long: our JSON, or (API_SERVER=gunicorn, past 8190 bytes) gunicorn's HTML page.
        assert set(op["responses"]["414"]["content"]) == {"application/json", "text/html"}, f"{method} {path}"


def test_without_a_published_model_the_row_schemas_are_generic(app):
    doc = app.test_client().get("/openapi.json").get_json()
    assert "No model is advertised yet" in doc["info"]["description"]
    assert "items" in doc["components"]["schemas"]["Rows"] and "anyOf" not in doc["components"]["schemas"]["Rows"]
    name = doc["paths"]["/v1/models/{name}:predict"]["post"]["parameters"][0]["schema"]
    assert name == {"type": "string", "pattern": "^[^/:]+$"}


def test_row_schemas_follow_the_published_signature(app, redis_db):
    _advertise(redis_db, DIGITS)
    doc = app.test_client().get("/openapi.json").get_json()
    rows = doc["components"]["schemas"]["Rows"]["anyOf"][0]
    assert (rows["minItems"], rows["maxItems"]) == (1, 1024)
    row = rows["items"]
    assert (row["minItems"], row["maxItems"], row["items"]["minItems"], row["items"]["maxItems"]) == (8, 8, 8, 8)
    assert row["items"]["items"] == {
        "type": "number",
        "minimum": -3.4028234663852886e38,
        "maximum": 3.4028234663852886e38,
    }
    name, version = doc["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]["parameters"][:2]
    assert name["schema"]["enum"] == ["digits"] and version["schema"]["enum"] == ["3"]
    assert "model 'digits' version 3" in doc["info"]["description"]


def test_several_inputs_are_objects_with_exactly_the_input_names_and_dtypes():
    schemas = orjson.loads(document(Facts(TWO_INPUTS, 8, False)))["components"]["schemas"]
    row = schemas["Rows"]["items"]
    assert row["required"] == ["a", "flag"] and row["additionalProperties"] is False
    assert row["properties"]["a"]["items"] == {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}
    assert row["properties"]["flag"] == {"type": "boolean"}
    assert schemas["Prediction"]["properties"]["y"] == {"type": "number", "nullable": True}
    assert schemas["V2InferRequest"]["properties"]["inputs"]["minItems"] == 2


def test_the_document_is_built_once_per_signature_and_settings():
    assert document(Facts(DIGITS, 16, False)) is document(Facts(DIGITS, 16, False))
    with_defs = ModelSignature.from_json(DIGITS.to_json())  # as ModelInfo reads it: new objects, same JSON
    assert document(Facts(with_defs, 16, False)) is document(Facts(DIGITS, 16, False))
    assert document(Facts(DIGITS, 16, False)) is not document(Facts(DIGITS, 17, False))


def test_with_api_keys_every_operation_but_the_public_ones_lists_401_and_the_bearer_scheme(redis_db):
    doc = create_app(_settings(redis_db, api_keys="k1")).test_client().get("/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    public = {
        "/",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/docs",
        "/docs/{asset}",
        "/v2/health/live",
        "/v2/health/ready",
    }
    for path, method, op in _operations(doc):
        assert ("401" in op["responses"]) == (path not in public), f"{method} {path}"
        assert op["security"] == ([] if path in public else [{"bearer": []}])
    without = orjson.loads(document(Facts(None, 8, False)))
    assert all("401" not in op["responses"] for _, _, op in _operations(without))


def test_a_405_allows_exactly_the_methods_the_document_lists_for_the_path(app):
    doc = app.test_client().get("/openapi.json").get_json()
    client = app.test_client()
    for path, ops in doc["paths"].items():
        url = re.sub(r"{([^}]+)}", lambda m: "swagger-ui.css" if m[1] == "asset" else "x", path)
        for method in ("PATCH", "PUT", "OPTIONS"):
            if method.lower() in ops:
                continue
            response = client.open(url, method=method)
            assert response.status_code == 405, f"{method} {url}"
            assert set(response.headers["Allow"].split(", ")) == {m.upper() for m in ops}, f"{method} {url}"


def test_get_routes_answer_head_without_advertising_it(app):
    response = app.test_client().head("/healthz")
    assert response.status_code == 200 and response.get_data() == b""


@pytest.mark.parametrize("signature", [DIGITS, TWO_INPUTS])
def test_the_example_bodies_match_their_schemas_and_are_accepted(signature):
    from openapi_schema_validator import OAS30Validator

    from api.protocols.kserve_codec import parse_request
    from api.validation import instances_from_body, rows_to_arrays

    doc = orjson.loads(document(Facts(signature, 8, False)))
    checked = 0
    for _path, _method, op in _operations(doc):
        for media_type, content in op.get("requestBody", {}).get("content", {}).items():
            if "example" not in content or media_type != "application/json":
                continue
            OAS30Validator({**doc, **content["schema"]}).validate(content["example"])
            checked += 1
    assert checked == 6  # /predict, three TF Serving predicts (latest, version, label), two KServe infers
    example = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert rows_to_arrays(instances_from_body(example), signature, 8)
    v2 = doc["paths"]["/v2/models/{name}/infer"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert parse_request(orjson.dumps(v2), None, signature, 8).arrays.keys() == {t.name for t in signature.inputs}


def test_each_tf_serving_signature_gets_its_own_rows_and_name():
    from shared.signature import SignatureDef

    half = TensorSpec("pixels", (32,), "float32")
    signature = ModelSignature(
        "digits",
        "3",
        DIGITS.inputs,
        DIGITS.outputs,
        (
            SignatureDef(
                "serving_default", "tensorflow/serving/predict", DIGITS.inputs, DIGITS.outputs, {"defaults": {}}
            ),
            SignatureDef("half", "tensorflow/serving/predict", (half,), DIGITS.outputs, {"defaults": {}}),
        ),
    )
    variants = orjson.loads(document(Facts(signature, 4, False)))["components"]["schemas"]["TFPredictRequest"]["oneOf"]
    rows = {
        v["properties"]["signature_name"]["enum"][0]: v["properties"]["instances"]
        for v in variants
        if "instances" in v["required"]
    }
    assert (
        rows["half"]["anyOf"][0]["items"]["maxItems"] == 32
        and rows["serving_default"]["anyOf"][0]["items"]["maxItems"] == 8
    )
    assert [v["required"] for v in variants] == [
        ["instances"],
        ["inputs"],
        ["instances", "signature_name"],
        ["inputs", "signature_name"],
    ]


def test_classify_and_regress_are_described_only_for_a_model_with_such_a_signature():
    from shared.signature import CLASSIFY_METHOD, SignatureDef, TensorSpec

    def paths(signature):
        return {p.rsplit(":", 1)[-1] for p in orjson.loads(document(Facts(signature, 4, False)))["paths"] if ":" in p}

    assert paths(DIGITS) == {"predict"}  # the server would refuse every :classify and :regress with a 400
    examples = TensorSpec("inputs", (), "string")
    classifier = ModelSignature(
        "c",
        "1",
        DIGITS.inputs,
        DIGITS.outputs,
        (
            SignatureDef("serving_default", "tensorflow/serving/predict", DIGITS.inputs, DIGITS.outputs, {}),
            SignatureDef("classify", CLASSIFY_METHOD, (examples,), DIGITS.outputs, {}),
        ),
    )
    assert paths(classifier) == {"predict", "classify"}
    assert paths(None) == {"predict", "classify", "regress"}  # no model yet: the document cannot know


def test_the_binary_tensor_extension_and_its_header_are_not_offered_to_schema_driven_clients():
    doc = orjson.loads(document(Facts(DIGITS, 4, False)))
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json"}
    assert all(p["name"] != "Inference-Header-Content-Length" for p in infer["parameters"])
    (metadata,) = [p for p in doc["paths"]["/batches"]["post"]["parameters"] if p["name"] == "metadata"]
    schema = metadata["content"]["application/json"]["schema"]
    # The largest described value, percent-encoded (9 bytes per 3-byte character), fits the API's URL limit
    # with room for a callback_url.
    assert schema["maxProperties"] * schema["additionalProperties"]["maxLength"] * 9 < MAX_TARGET_BYTES - 2048


def test_the_version_served_is_pyprojects():
    import tomllib

    from shared.config import PROJECT_ROOT
    from shared.version import VERSION

    with open(f"{PROJECT_ROOT}/pyproject.toml", "rb") as f:
        assert tomllib.load(f)["project"]["version"] == VERSION
    assert orjson.loads(document(Facts(None, 4, False)))["info"]["version"] == VERSION
