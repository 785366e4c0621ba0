"""The Procfile starts what the images start, and its web process listens where a Procfile platform looks
(every interface, on $PORT)."""

from __future__ import annotations

import importlib.util
import os

from shared.config import PROJECT_ROOT


def processes() -> dict[str, str]:
    with open(os.path.join(PROJECT_ROOT, "Procfile")) as f:
        return dict(line.rstrip("\n").split(": ", 1) for line in f if line.strip())


def test_each_process_runs_a_module_of_this_project():
    found = processes()
    assert set(found) == {"web", "worker", "grpc"}
    assert found["worker"] == "python -m worker"
    assert found["grpc"] == "python -m api.protocols.grpc_server"
    assert importlib.util.find_spec("api.protocols.grpc_server") is not None


def test_web_serves_the_api_on_every_interface_and_the_platforms_port():
    web = processes()["web"]
    assert "API_HOST=0.0.0.0" in web and "API_PORT=${PORT:-8000}" in web
    assert web.endswith("python -m api.serve")  # gunicorn, or granian with API_SERVER=granian
