"""docs/api.md's route lists say what the app does: the public routes (no key with API_KEYS set) and the
routes that still answer while Redis is unreachable, both checked against the real Flask app."""

from __future__ import annotations

import logging
import os
import re

import pytest

from api import create_app
from scripts.harness import free_port
from shared.config import PROJECT_ROOT, Settings

SAMPLE = {
    "job_id": "0" * 32,
    "batch_id": "0" * 32,
    "name": "digits",
    "version": "1",
    "label": "stable",
    "asset": "swagger-ui.css",
}


def documented(heading: str) -> set[str]:
    """The `- `METHOD path`` bullets under `### heading` in docs/api.md."""
    with open(os.path.join(PROJECT_ROOT, "docs", "api.md")) as f:
        text = f.read()
    section = text.split(f"### {heading}\n", 1)[1].split("\n#", 1)[0]
    return set(re.findall(r"^- `([A-Z]+ \S+)`", section, flags=re.M))


def routes(app) -> dict[str, tuple[str, str]]:
    """`METHOD /path/<param>` (as docs/api.md writes them) → (method, a concrete URL)."""
    found = {}
    for rule in app.url_map.iter_rules():
        template = re.sub(r"<(?:\w+:)?(\w+)>", r"<\1>", rule.rule)
        url = re.sub(r"<(\w+)>", lambda m: SAMPLE[m.group(1)], template)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found[f"{method} {template}"] = (method, url)
    return found


@pytest.fixture(scope="module")
def no_redis_app():
    logging.disable(logging.CRITICAL)
    try:
        yield create_app(Settings.from_env({}).replace(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    finally:
        logging.disable(logging.NOTSET)


def test_the_public_routes_list_is_what_answers_without_a_key():
    app = create_app(Settings.from_env({}).replace(api_keys="k-1", redis_url="redis://127.0.0.1:1/0"))
    client = app.test_client()
    public = set()
    for name, (method, url) in routes(app).items():
        if client.open(url, method=method, json={}).status_code != 401:
            public.add(name)
    assert public == documented("Public routes")


def test_the_list_of_routes_that_answer_without_redis_is_what_the_app_does(no_redis_app):
    client = no_redis_app.test_client()
    answering = set()
    for name, (method, url) in routes(no_redis_app).items():
        if client.open(url, method=method, json={"instances": [[0.0] * 64]}).status_code != 503:
            answering.add(name)
    assert answering == documented("While Redis is down")


def test_every_route_of_the_service_is_in_the_api_reference():
    """docs/api.md's table names every route but the protocol ones (docs/protocols.md has those)."""
    app = create_app(Settings.from_env({}).replace(redis_url="redis://127.0.0.1:1/0"))
    with open(os.path.join(PROJECT_ROOT, "docs", "api.md")) as f:
        reference = f.read()
    missing = []
    for name in routes(app):
        method, path = name.split(" ", 1)
        if path.startswith(("/v1/models/", "/v2")):
            continue
        written = re.sub(r"<(job_id|batch_id)>", "<id>", path)
        if f"`{method} {written}`" not in reference:
            missing.append(f"{method} {written}")
    assert missing == []
