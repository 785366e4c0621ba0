"""Optional API keys: who may call the API, and who owns what they created.

With API_KEYS set, every endpoint but the public ones (health checks, the API description, the index page)
needs `Authorization: Bearer <key>` (401 otherwise). GET /metrics also takes METRICS_TOKEN, which opens
nothing else: Prometheus scrapes with it and cannot submit work or read results.
Whatever a caller creates records the caller's *owner* string, the SHA-256 of its key (the key itself is
never stored or logged); reading or cancelling it with another key answers 404, as for an unknown id, so
ids cannot be probed. Keys off (the default): everyone is the same anonymous owner, "".

Views and stores adopt this with two calls: `current_owner()` when creating something (store it with
the thing), `require_owner(stored, not_found)` before reading or changing it.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Flask, g, request

from api.services import services
from shared.config import Settings
from shared.errors import NotFound, Unauthorized
from shared.tenants import Tenants, fingerprint

# Endpoints anyone may call. Health checks (ours and KServe's), the API description and the index page carry
# no data: load balancers, orchestrators and people reading /docs need no key. /metrics does need one: an API
# key or METRICS_TOKEN (Prometheus sends it as a bearer token; docs/deployment.md#monitoring).
PUBLIC_ENDPOINTS = frozenset(
    {
        "index.index",
        "health.healthz",
        "health.readyz",
        "kserve.live",
        "kserve.ready",
        "openapi.openapi_json",
        "openapi.docs",
        "openapi.docs_asset",
    }
)
METRICS_ENDPOINT = "metrics.scrape"


def key_digests(keyring: Tenants) -> tuple[bytes, ...]:
    """The API keys (API_KEYS and API_KEYS_FILE, shared/tenants.py) as digests only (the keys are not kept)."""
    return tuple(bytes.fromhex(digest) for digest in keyring.by_digest)


def metrics_token_digest(settings: Settings) -> bytes | None:
    """METRICS_TOKEN as a digest (None when unset): it opens GET /metrics and nothing else."""
    return bytes.fromhex(fingerprint(settings.metrics_token)) if settings.metrics_token else None


def init_app(app: Flask) -> None:
    """Check every request before its view runs."""
    app.before_request(_authenticate)


def _authenticate() -> None:
    g.owner = ""
    digests = services().api_key_digests
    if not digests or request.endpoint in PUBLIC_ENDPOINTS:
        return
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("this server needs an API key", expected="header Authorization: Bearer <key>")
    digest = hashlib.sha256(presented.strip().encode("latin-1", "replace")).digest()
    metrics_token = services().metrics_token_digest
    if request.endpoint == METRICS_ENDPOINT and metrics_token and hmac.compare_digest(digest, metrics_token):
        return  # the scrape token: this endpoint only, and no owner (it creates nothing)
    # Compare against every key, without stopping at a match, each in constant time.
    matched = False
    for known in digests:
        matched |= hmac.compare_digest(digest, known)
    if not matched:
        raise Unauthorized("the API key is not valid", expected="header Authorization: Bearer <key>")
    g.owner = digest.hex()


def keys_required() -> bool:
    """Whether this app was started with API keys (API_KEYS)."""
    return bool(services().api_key_digests)


def current_owner() -> str:
    """The caller's owner string ("" when keys are off): record it with anything the caller creates."""
    return g.get("owner", "")


def owns(stored: bytes | str | None, owner: str) -> bool:
    """Whether `owner` may see something whose recorded owner is `stored` (always, when keys are off)."""
    if not owner:
        return True
    if isinstance(stored, str):
        stored = stored.encode("utf-8")
    return hmac.compare_digest(stored or b"", owner.encode("ascii"))


def require_owner(stored: bytes | str | None, not_found: NotFound) -> None:
    """Raise `not_found` unless the current caller created the thing whose owner is `stored`."""
    if not owns(stored, current_owner()):
        raise not_found
