"""GET /openapi.json (the OpenAPI 3 document of every route) and GET /docs, a Swagger UI page that works
offline: its scripts and styles come from the `swagger-ui-bundle` package, served under /docs/, no CDN."""

from __future__ import annotations

from flask import Blueprint, Response, abort, request, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from api.auth import keys_required
from api.openapi.paths import ASSET_TYPES, Facts, document
from api.responses import json_response
from api.services import services
from shared.errors import NotReady
from shared.signature import ModelSignature

bp = Blueprint("openapi", __name__)

# The files the page loads; nothing else in the package directory is served.
ASSETS = frozenset(ASSET_TYPES)

DOCS_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Batched inference API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
      layout: "StandaloneLayout",
      validatorUrl: null
    });
  </script>
</body>
</html>
"""


@bp.get("/openapi.json")
def openapi_json() -> Response:
    """The OpenAPI 3 document describing every route of this API, with the row schemas of the model `?model=`
    names (default: the first model served)."""
    ext = services()
    signature: ModelSignature | None
    try:
        signature = ext.model_info.resolve(request.args.get("model")).signature  # ?model=: that model's rows
    except NotReady:
        signature = None
    return json_response(document(Facts(signature, ext.settings.max_rows_per_request, keys_required())))


@bp.get("/docs")
def docs() -> Response:
    """Swagger UI for /openapi.json, with every asset served from this server."""
    return Response(DOCS_PAGE, mimetype="text/html")


@bp.get("/docs/<asset>")
def docs_asset(asset: str) -> Response:
    """A Swagger UI asset from the swagger-ui-bundle package."""
    if asset not in ASSETS:
        abort(404)
    return send_from_directory(swagger_ui_path, asset, max_age=86400)
